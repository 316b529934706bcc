"""Captured steps on the executor, from raw op_batch entries (server/_plan.py): a replay whose
inputs differ from the watched run's, or that is malformed, gives exactly what the same
entries sent eagerly give (the same error, at the same op index, the same state after)."""

from __future__ import annotations

import numpy as np
import pytest
from gradserve.server import _convert as convert
from gradserve.server import _replay as server_replay
from gradserve.server._auth import ANONYMOUS
from gradserve.server._executor import Executor
from gradserve.server._sessions import SessionManager
from gradserve.v1 import codec
from gradserve.v1 import gradserve_pb2 as pb

TEMPLATE = [  # x * w, gathered, summed, scaled by a learning-rate-like float, backward
    ["mul", [[0], [1]], [2], None, 0],
    ["gather", [[2], [3]], [4], {"dim": 0}, 0],
    ["sum", [[4]], [5], None, 0],
    ["mul", [[5], 3.0], [6], None, 0],
    ["backward", [[6]], [], {"grads": 0, "inputs": 0, "retain_graph": False,
                             "create_graph": False}, 0],
    ["grad", [[1]], [7], None, 1],
    ["set_grad", [[1]], [], None, 0],
]


def _session_with(x, w, index):
    manager = SessionManager(ttl=None, max_sessions=None)
    session = manager.create(ANONYMOUS, "cpu")
    ex = Executor(("cpu",))
    setup = codec.pack_ops([["tensor", [{"d": 0}], ["x"], None, 0],
                            ["tensor", [{"d": 1}], ["w"], {"requires_grad": True}, 0],
                            ["tensor", [{"d": 2}], ["i"], None, 0]])
    data = [codec_data(x), codec_data(w), codec_data(index)]
    assert ex.run(session, convert.pipeline_request(
        pb.PipelineRequest(op_batch=setup, op_data=data))).error is None
    return ex, session


def codec_data(a: np.ndarray) -> pb.TensorData:
    from gradserve.engine.seam import from_numpy_dtype

    return pb.TensorData(shape=a.shape, dtype=from_numpy_dtype(a.dtype).name,
                         raw=a.astype(a.dtype.newbyteorder("<")).tobytes())


def _ids(n: int) -> list:
    return ["x", "w", f"h{n}", "i", f"g{n}", f"s{n}", f"l{n}", f"d{n}"]


def _send(ex, session, entries):
    return ex.run(session, convert.pipeline_request(
        pb.PipelineRequest(op_batch=codec.pack_ops(entries))))


def _eager(ids):
    return [server_replay.fill(t, ids, []) for t in TEMPLATE]


def _state(session) -> dict:
    return {tid: (t.shape, str(t.dtype), t._version, t.grad_fn is not None,
                  None if t._grad is None else t._grad.numpy().tolist(),
                  t.detach().numpy().tolist()) for tid, t in session.tensors.items()}


def _run_both(steps):
    """Run `steps` (a list of (ids, edit)) on two sessions: one as captures and replays (its
    plan), one as the entries; each result's error and the states after."""
    x = np.arange(6, dtype=np.float32)
    w = np.linspace(-1, 1, 6, dtype=np.float32)
    index = np.array([0, 2, 4])
    (pex, planned), (eex, eager) = _session_with(x, w, index), _session_with(x, w, index)
    results = []
    for n, (ids, edit) in enumerate(steps):
        entry = ["@capture" if n == 0 else "@replay", "t.0", ids, []]
        if n == 0:
            entry.append(TEMPLATE)
        if edit is not None:
            edit(pex, planned)
            edit(eex, eager)
        got = _send(pex, planned, [entry])
        want = _send(eex, eager, _eager(ids))
        results.append((got.error, want.error))
        assert _state(planned) == _state(eager)
    return planned, results


def _plan(session):
    (captured,) = server_replay._PLANS[session].values()
    return captured.plan  # None while there is none


def test_replays_run_the_plan_and_match_eager():
    planned, results = _run_both([(_ids(n), None) for n in range(4)])
    assert all(got is None and want is None for got, want in results)
    plan = _plan(planned)
    assert plan.runs == 3 and plan.prepared() == len(TEMPLATE)
    assert [st.backward is not None for st in plan.steps if st.name == "backward"] == [True]
    # CPU ops run their kernels directly (seam.apply_direct), with eager's results (above)
    assert [st.direct for st in plan.steps if st.kind == "op"] == [True] * 4


def _rebind(name, array):
    def edit(ex, session):
        raw = codec.pack_ops([["tensor", [{"d": 0}], [name], None, 0]])
        assert ex.run(session, convert.pipeline_request(
            pb.PipelineRequest(op_batch=raw, op_data=[codec_data(array)]))).error is None
    return edit


@pytest.mark.parametrize("edit, index", [
    # another shape: the first op that reads x goes eager (and so does the rest)
    (_rebind("x", np.arange(4, dtype=np.float32)), 0),
    # an index out of range (the same shape: the plan fits): the prepared gather fails as
    # eager's does, at op 1, and the plan stays
    (_rebind("i", np.array([0, 9, 2])), 1),
    # another dtype
    (_rebind("x", np.arange(6, dtype=np.float64)), None),
])
def test_a_replay_that_does_not_fit_is_eagers(edit, index):
    steps = [(_ids(n), None) for n in range(3)] + [(_ids(3), edit), (_ids(4), None)]
    planned, results = _run_both(steps)
    got, want = results[3]
    plan = _plan(planned)
    if index == 1:  # an op that failed while its plan fitted: the plan stays
        assert plan.runs == 2 and plan.fallbacks == 0
    elif index == 0:  # dropped, and the next run (failing again) made none
        assert plan is None
    else:  # dropped, and made again from the next run
        assert plan.runs == 0 and plan.fallbacks == 0
    if index is None:
        assert got is None and want is None
    else:
        assert got is not None and type(got) is type(want)
        assert (got.index, got.op, str(got)) == (want.index, want.op, str(want))
        assert type(got.cause) is type(want.cause)
        assert got.index == index


def test_an_unbound_tensor_or_too_few_ids_is_eagers_error():
    def release_w(ex, session):
        ex.run(session, convert.pipeline_request(pb.PipelineRequest(release=["w"])))

    planned, results = _run_both([(_ids(n), None) for n in range(3)] + [(_ids(3), release_w)])
    got, want = results[3]
    assert got is not None and (got.index, str(got)) == (want.index, str(want))
    assert "not found" in str(got)
    result = _send(Executor(("cpu",)), planned, [["@replay", "t.0", ["x", "w"], []]])
    assert "beyond the 2 ids" in str(result.error)  # eager's expansion says what is wrong


def test_a_slot_unbound_when_the_run_starts_is_eagers_error_where_it_is_read():
    """A run looks up the slots its steps read before binding them when it starts (server/
    _plan.py `_outside`); one that is unbound goes eager at the step that reads it, after
    the steps before it ran prepared: eager's error at eager's op index, eager's state. A
    command has no signature to check: the rule alone keeps it from reading nothing."""
    template = [["mul", [[0], [1]], [2], None, 0], ["set_grad", [[3]], [], None, 0],
                ["sum", [[2]], [4], None, 0]]
    x, w, index = np.arange(6, dtype=np.float32), np.ones(6, np.float32), np.array([0, 2])
    sides = [_session_with(x, w, index) for _ in range(2)]
    for n in range(4):
        ids = ["x", "w", f"h{n}", "i", f"s{n}"]
        if n == 3:
            for ex, session in sides:
                ex.run(session, convert.pipeline_request(pb.PipelineRequest(release=["i"])))
        entry = ["@capture" if n == 0 else "@replay", "u.0", ids, []]
        if n == 0:
            entry.append(template)
        (pex, planned), (eex, eager) = sides
        got = _send(pex, planned, [entry]).error
        want = _send(eex, eager, [server_replay.fill(t, ids, []) for t in template]).error
        assert _state(planned) == _state(eager)
    assert got is not None and (got.index, got.op, str(got)) == (want.index, want.op, str(want))
    assert got.index == 1 and "not found" in str(got)


def test_a_lone_replay_is_known_before_it_runs_and_its_time_is_kept():
    """`lone_replay` names the handle of an op_batch that is one replay entry alone (what may
    run on the event loop's thread), nothing else; a step's time is the least of its last
    few requests (a loaded machine's slow run does not send it off the loop)."""
    x, w, index = np.arange(6, dtype=np.float32), np.ones(6, np.float32), np.array([0, 2])
    ex, session = _session_with(x, w, index)
    ids = _ids(0)
    replay = codec.pack_ops([["@replay", "t.0", ids, []]])
    assert server_replay.lone_replay(replay) == "t.0"
    for batch in ([["@replay", "t.0", ids, []], ["mul", ["x", "w"], ["y"], None, 0]],
                  [["@capture", "t.0", ids, [], TEMPLATE]], [["mul", ["x", "w"], ["y"], None, 0]]):
        assert server_replay.lone_replay(codec.pack_ops(batch)) is None
    assert server_replay.lone_replay(replay[:-3]) is None  # does not parse: eager says why
    assert server_replay.last_seconds(session, "t.0") is None  # not captured
    assert _send(ex, session, [["@capture", "t.0", ids, [], TEMPLATE]]).error is None
    assert server_replay.last_seconds(session, "t.0") is None  # not measured
    for seconds in (0.004, 0.001, 0.009, 0.008, 0.007):
        server_replay.note_seconds(session, "t.0", seconds)
    assert server_replay.last_seconds(session, "t.0") == 0.001
    server_replay.note_seconds(session, "t.0", 0.006)  # 0.001 was 5 requests ago
    assert server_replay.last_seconds(session, "t.0") == 0.006


SHARED = [  # x read by every op: its guard is checked once per stretch of prepared ops
    ["add", [[0], [1]], [2], None, 0],
    ["mul", [[2], [1]], [3], None, 0],
    ["sub", [[3], [1]], [4], None, 0],
    ["mul", [[1], 2.0], [], None, codec.INPLACE],  # x changes (in place): checked again
    ["add", [[4], [1]], [5], None, 0],
]


@pytest.mark.parametrize("later", [np.arange(6, dtype=np.float32),  # the same signature
                                   np.arange(3, dtype=np.float32),  # another shape
                                   np.arange(6, dtype=np.float64)])  # another dtype
def test_a_shared_input_is_checked_once_per_stretch_and_falls_back_as_eager(later):
    setups = [_session_with(np.ones(6, np.float32), np.ones(6, np.float32), np.array([0]))
              for _ in range(2)]
    (pex, planned), (eex, eager) = setups
    for n in range(4):
        ids = ["w" if n < 3 else f"w{n}", "x", f"a{n}", f"b{n}", f"c{n}", f"d{n}"]
        if n == 3:  # the shared input (slot 1) is another tensor in the last run
            for ex, session in setups:
                _rebind("x", later)(ex, session)
        entry = ["@capture" if n == 0 else "@replay", "s.0", ids, []]
        if n == 0:
            entry.append(SHARED)
        if n == 3:
            for ex, session in setups:
                _rebind("w3", np.ones(6, np.float32))(ex, session)
        got = _send(pex, planned, [entry])
        want = _send(eex, eager, [server_replay.fill(t, ids, []) for t in SHARED])
        assert (got.error is None) == (want.error is None)
        if got.error is not None:
            assert (got.error.index, str(got.error)) == (want.error.index, str(want.error))
        assert _state(planned) == _state(eager)
        if n == 2:  # the plan: x's guard at the first read of each stretch only
            plan = next(iter(server_replay._PLANS[planned].values())).plan
            assert [[pos for pos, _ in st.guards] for st in plan.steps] == [
                [0, 1], [], [], [0], [1]]
    plan = next(iter(server_replay._PLANS[planned].values())).plan
    fits = later.shape == (6,) and later.dtype == np.float32
    assert (plan is not None and plan.runs == 3) == fits


def test_a_replay_naming_one_id_in_two_slots_is_eagers():
    """One id in two slots (the SDK never sends it): a step that rebinds the id under one
    slot is what a later step reads under the other, as in the eager entries."""
    two = [["add", [[0], [1]], [2], None, 0],  # c = w + x
           ["mul", [[3], [1]], [4], None, 0]]  # d = (slot 3) * x
    setups = [_session_with(np.ones(6, np.float32), np.full(6, 2, np.float32), np.array([0]))
              for _ in range(2)]
    (pex, planned), (eex, eager) = setups
    for ex, session in setups:
        _rebind("c", np.full(6, 7, np.float32))(ex, session)
    for n in range(4):
        # slot 3 is "c" too in the last run: the c that step 0 just made, as eager reads it
        ids = ["w", "x", f"c{n}" if n < 3 else "c", "c", f"d{n}"]
        entry = ["@capture" if n == 0 else "@replay", "d.0", ids, []]
        if n == 0:
            entry.append(two)
        got = _send(pex, planned, [entry])
        want = _send(eex, eager, [server_replay.fill(t, ids, []) for t in two])
        assert got.error is None and want.error is None
        assert _state(planned) == _state(eager)
    assert planned.tensors["d3"].detach().numpy().tolist() == [3.0] * 6  # (2 + 1) * 1, not 7
    plan = next(iter(server_replay._PLANS[planned].values())).plan
    assert plan is None or plan.fallbacks == 1


def test_a_planned_optimizer_write_runs_its_kernel_directly_as_eagers(monkeypatch):
    """An in-place write autograd does not record, whose kernel writes into storage (an
    optimizer step), runs without the dispatch's general steps (prepared.apply_inplace_known):
    eager's bits and version bump; anything else (a read-only target, a write autograd
    records) goes the general way, with its result or error."""
    from gradserve import engine
    from gradserve.engine.core import dispatch
    from gradserve.engine.seam import OPS, apply_inplace_known

    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    g = rng.standard_normal((3, 4)).astype(np.float32)
    eager = engine.tensor(w.copy(), requires_grad=True)
    with engine.no_grad():
        eager._inplace("optim_sgd", engine.tensor(g), lr=0.1)
    planned = engine.tensor(w.copy(), requires_grad=True)
    version = planned._version
    general = dispatch.write_checked
    calls = []
    monkeypatch.setattr(dispatch, "write_checked", lambda *a: calls.append(a) or general(*a))
    with engine.no_grad():
        apply_inplace_known(OPS["optim_sgd"], planned, (engine.tensor(g),), {"lr": 0.1}, None)
    assert calls == []  # the direct write
    assert planned._version == version + 1
    np.testing.assert_array_equal(planned.detach().numpy(), eager.detach().numpy())
    frozen = engine.tensor(w.copy())
    frozen._data.flags.writeable = False
    with pytest.raises(Exception, match="read-only") as direct_error:
        apply_inplace_known(OPS["optim_sgd"], frozen, (engine.tensor(g),), {"lr": 0.1}, None)
    assert len(calls) == 1  # the general path says what is wrong
    with pytest.raises(type(direct_error.value), match="read-only"):
        with engine.no_grad():
            frozen._inplace("optim_sgd", engine.tensor(g), lr=0.1)
