"""The state dir's session files (server/_state.py; the snapshot, engine/surface/snapshot.py):
a quiet session written and read back keeps everything autograd keeps, and a session that is
not quiet is refused."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from gradserve import engine
from gradserve.engine import AutogradError
from gradserve.engine.seam import NotQuiet, unpack, why_not_quiet
from gradserve.server._sessions import Session
from gradserve.server._state import StateDir


def _round_trip(tmp_path, session: Session) -> Session:
    writer, reader = StateDir(tmp_path, "writer"), StateDir(tmp_path, "reader")
    epoch, nbytes = writer.save(session)
    assert epoch == session.epoch + 1 and nbytes > 0
    assert reader.status(session.id).state == "moved"
    with reader.claim(session.id) as (arrays, meta):
        out = Session(session.id, meta["owner"], meta["device"], time.monotonic)
        out.tensors, out.generator = unpack(arrays, meta, meta["device"])
        out.epoch, out.applied_seq = meta["epoch"], meta["applied_seq"]
    assert reader.status(session.id) is None  # claimed: nobody restores it twice
    return out


def _session(**tensors) -> Session:
    s = Session("s" * 22, "alice", "cpu", time.monotonic)
    s.tensors.update(tensors)
    s.applied_seq = 41
    return s


def test_values_grads_versions_and_storage_sharing_survive(tmp_path):
    w = engine.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (w * 3).sum().backward()
    with engine.no_grad():
        w.mul_(2)  # version 1
    base = engine.arange(12, dtype=engine.float64).reshape(3, 4)
    view = base[1]  # a view: storage and version counter shared
    detached = w.detach()  # storage and version counter shared
    data = w.data  # storage shared, a version counter of its own
    f_order = engine.tensor(np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)))
    t = f_order.t()  # a view of a Fortran-ordered buffer
    flags = engine.tensor([True, False])
    s = _session(w=w, base=base, view=view, detached=detached, data=data, t=t, flags=flags,
                 grad=w.grad, again=w)
    s.generator.manual_seed(7)
    s.generator.rng.standard_normal(3)
    out = _round_trip(tmp_path, s)
    r = out.tensors
    assert list(r) == list(s.tensors) and out.applied_seq == 41 and out.epoch == 1
    for tid, x in s.tensors.items():
        y = r[tid]
        assert np.array_equal(y._data, x._data) and y._data.dtype == x._data.dtype, tid
        assert (y.dtype, y.requires_grad, y.is_leaf, y._version, y.stride(), y.shape) == (
            x.dtype, x.requires_grad, x.is_leaf, x._version, x.stride(), x.shape), tid
    assert r["again"] is r["w"] and r["grad"] is r["w"].grad
    assert r["w"].grad.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    with engine.no_grad():
        r["base"].add_(1)
    assert r["view"].tolist() == [5.0, 6.0, 7.0, 8.0] and r["view"]._version == 1
    with engine.no_grad():
        r["detached"].add_(1)
    assert r["w"]._version == 2 and r["data"]._version == 0
    assert r["data"].tolist() == r["w"].tolist() == [[3.0, 5.0], [7.0, 9.0]]
    assert r["t"].tolist() == [[0, 3], [1, 4], [2, 5]]
    assert np.array_equal(out.generator.rng.standard_normal(3), s.generator.rng.standard_normal(3))


def test_a_consumed_graph_is_written_and_stays_consumed(tmp_path):
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()  # MulBackward0 saves its inputs: backward frees them
    prod = w * w
    prod.sum().backward()
    assert why_not_quiet({"loss": loss}) is not None  # not used by backward yet
    loss.backward()
    out = _round_trip(tmp_path, _session(w=w, loss=loss, prod=prod))
    r = out.tensors
    assert r["loss"].grad_fn.name() == "SumBackward0" and not r["loss"].is_leaf
    assert r["prod"].grad_fn.name() == "MulBackward0"
    with pytest.raises(AutogradError, match="backward through the graph a second time"):
        (r["prod"] * 2).sum().backward()


def test_graphs_without_saved_tensors_are_written_whole(tmp_path):
    """Adds, sums and views save nothing: after the move a backward through them runs as it
    would have, accumulating into the same leaves (and retained grads)."""

    def build():
        w = engine.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = w + 1
        y.retain_grad()
        total = y.sum()
        total.backward()
        return {"w": w, "y": y, "total": total, "view": w[1:], "grad": w.grad}

    def more(t):  # what the program does after the move, in both worlds
        t["total"].backward()
        (t["view"] * 3).sum().backward()
        return t["w"].grad.tolist(), t["y"].grad.tolist(), t["view"].grad_fn.name()

    moved = _round_trip(tmp_path, _session(**build())).tensors
    assert more(moved) == more(build()) == ([2.0, 5.0, 5.0], [2.0, 2.0, 2.0], "SliceBackward0")


def test_saved_tensors_backward_can_still_use_are_not_quiet(tmp_path):
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    pending = (w * w).sum()  # MulBackward0 keeps w for a backward not run yet
    retained = (w * 3).sum()
    retained.backward(retain_graph=True)
    with engine.no_grad():
        hidden = (w * w)[0:1]  # no history of its own, but its base has one
    hidden._base = w * w
    for tensors, name in (({"p": pending}, "MulBackward0"), ({"r": retained}, "MulBackward0"),
                          ({"h": hidden}, "MulBackward0")):
        assert f"leads to a recorded graph ({name}) whose saved tensors" in (
            why_not_quiet(tensors))
        with pytest.raises(NotQuiet, match="backward can still use"):
            StateDir(tmp_path, "x").save(_session(**tensors))
    assert list(tmp_path.iterdir()) == []


def test_moving_lost_and_stale_markers(tmp_path, monkeypatch):
    state = StateDir(tmp_path, "drainer")
    state.mark_moving(["a" * 22], time.time() + 5)
    assert state.status("a" * 22).state == "moving"
    state.mark_moving(["b" * 22], time.time() - 60)  # its writer is long gone
    assert state.status("b" * 22).state == "lost"
    state.mark_lost("a" * 22, "it never reached a quiet point")
    stored = state.status("a" * 22)
    assert stored.state == "lost" and "never reached a quiet point" in stored.details
    assert state.status("../../etc/passwd") is None  # ids outside the alphabet name no file
    assert state.sweep(older_than=60) == []  # all young
    old = time.time() - 3600
    for path in tmp_path.iterdir():
        os.utime(path, (old, old))
    assert sorted(state.sweep(older_than=60)) == ["a" * 22 + ".lost", "b" * 22 + ".moving"]
    assert list(tmp_path.iterdir()) == []


def test_a_gpu_session_is_written_and_read_back(tmp_path):
    """On "cuda:0" (the seam's test double without a GPU): values, grads and whole-buffer
    aliases (`detach`) come back; a view of part of a buffer is refused, not written wrong."""
    w = engine.tensor([[1.0, 2.0]], requires_grad=True).to("cuda:0").detach().requires_grad_()
    (w * 3).sum().backward()
    s = _session(w=w, grad=w.grad, alias=w.detach())
    s.device = "cuda:0"
    r = _round_trip(tmp_path, s).tensors
    assert r["w"].device == "cuda:0" and r["grad"] is r["w"].grad
    assert r["w"].grad.tolist() == [[3.0, 3.0]]
    with engine.no_grad():
        r["alias"].add_(1)
    assert r["w"].tolist() == [[2.0, 3.0]] and r["w"]._version == 1
    s.tensors["part"] = w[0]
    with pytest.raises(NotQuiet, match="views part of another's storage"):
        StateDir(tmp_path, "x").save(s)
