"""A write through a view gives torch's graph: the base's grad_fn is a CopySlices node that
holds the write's own node (CopyBackwards, MulBackward0, ...) inside it, with edges to the
base's previous history and to the write's other inputs, on engine tensors and on a live
session (whose client records the same nodes). Values, gradients (first and second order)
and torch's errors through it are torch's too."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI

X = np.arange(12.0).reshape(3, 4) / 10 - 0.4
W = np.linspace(-1.0, 1.5, 12).reshape(3, 4)


def _set(t, key, value):
    t[key] = value


# (a, w) -> None: writes into a (a non-leaf: x's clone) through a view
WRITES = {
    "setitem_tensor": lambda a, w: _set(a, 0, w[0]),
    "setitem_number": lambda a, w: _set(a, 0, 5.0),
    "setitem_slice": lambda a, w: _set(a, slice(1, 3), w[:2]),
    "copy_broadcast": lambda a, w: a.narrow(0, 1, 2).copy_(w[0]),
    "mul_column": lambda a, w: a[:, 1].mul_(w[:, 0]),
    "mul_number": lambda a, w: a[0].mul_(2),
    "narrow_copy": lambda a, w: a.narrow(0, 1, 2).copy_(w[:2]),
    "view_of_view_add": lambda a, w: a.narrow(0, 1, 2)[:, 1].add_(w[:2, 0]),
    "transpose_sub": lambda a, w: a.t()[1:3].sub_(w.t()[:2]),
    "exp_saves_its_output": lambda a, w: a[:2].exp_(),
    "addcmul_three_inputs": lambda a, w: a[:2].addcmul_(w[:2], w[1:]),
    "two_writes": lambda a, w: (a[2:].mul_(w[0]), a[:2].exp_()),
    "unsqueeze_view": lambda a, w: a.unsqueeze(0)[:, 1].div_(w[1] + 3),
    # fill_'s overloads: a number (FillBackward2) or a tensor (FillBackward3), and zero_
    "fill_number": lambda a, w: a[0].fill_(2.5),
    "fill_tensor": lambda a, w: a[1:].fill_(w[0, 1]),
    "zero_": lambda a, w: a[:, 0].zero_(),
}


def _graph(fn):
    """(type name, (the same for each of next_functions)), None for a missing edge."""
    if fn is None:
        return None
    return type(fn).__name__, tuple(_graph(nxt) for nxt, _ in fn.next_functions)


def _run(M, write, base_grad=True):
    x = M.tensor(X, requires_grad=base_grad)
    w = M.tensor(W, requires_grad=True)
    a = (x * 1.5).clone() if base_grad else x.clone()
    write(a, w)
    graph = _graph(a.grad_fn)
    (a * a).sum().backward()
    grads = tuple(None if t.grad is None else np.asarray(t.grad.tolist())
                  for t in (x, w))
    return graph, np.asarray(a.detach().tolist()), grads


def _same(ours, theirs):
    assert ours[0] == theirs[0]
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12, atol=1e-12)
    for g, tg in zip(ours[2], theirs[2], strict=True):
        assert (g is None) == (tg is None)
        if g is not None:
            np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_write_through_a_view_gives_torchs_graph_values_and_grads(M, name):
    ours, theirs = _run(M, WRITES[name]), _run(torch, WRITES[name])
    assert theirs[0][0] == "CopySlices"
    _same(ours, theirs)


@pytest.mark.parametrize("name", ["setitem_tensor", "mul_column", "addcmul_three_inputs"])
def test_a_base_outside_the_graph_has_no_edge(M, name):
    ours, theirs = _run(M, WRITES[name], False), _run(torch, WRITES[name], False)
    assert theirs[0][1][0] is None
    _same(ours, theirs)


def test_the_nodes_next_functions_are_the_bases_and_the_writes(M):
    def build(M):
        x, w = M.tensor(X, requires_grad=True), M.tensor(W, requires_grad=True)
        a = x.clone()
        prev = a.grad_fn
        a[:, 1].mul_(w[:, 0])
        return a.grad_fn, prev, w

    (node, prev, w), (tnode, _, _) = build(M), build(torch)
    (first, nr0), (second, nr1) = node.next_functions
    assert first is prev and nr0 == 0 and nr1 == 0
    assert type(second).__name__ == "SelectBackward0"
    assert second.next_functions[0][0].variable is w
    assert len(node.next_functions) == len(tnode.next_functions) == 2
    assert type(node).__name__ == type(tnode).__name__ == "CopySlices"
    assert node.name() == tnode.name() == "torch::autograd::CopySlices"
    acc = second.next_functions[0][0]
    tacc = tnode.next_functions[1][0].next_functions[0][0]
    assert (type(acc).__name__, acc.name()) == (type(tacc).__name__, tacc.name())


def test_second_order_gradients_through_copyslices_are_torchs(M):
    def grads(M):
        x, w = M.tensor(X, requires_grad=True), M.tensor(W, requires_grad=True)
        a = x.clone()
        a[:, 1].mul_(w[:, 0])
        a[:2].exp_()
        gw, gx = M.autograd.grad((a * a).sum(), (w, x), create_graph=True)
        hx = M.autograd.grad((gw * gw).sum() + gx.sum(), x)[0]
        return [np.asarray(t.tolist()) for t in (gw, gx, hx)]

    for g, tg in zip(grads(M), grads(torch), strict=True):
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-12)


def test_torchs_errors_through_copyslices(M):
    def errors(M):
        x, w = M.tensor(X, requires_grad=True), M.tensor(W, requires_grad=True)
        out = []
        a = x.clone()
        a[:2].exp_()  # saves its output: a view of a
        a[1:].mul_(3)  # overwrites part of it
        b = x.clone()
        b[:, 1].mul_(w[:, 0])  # saves w's view and b's old column
        loss = (b * 1).sum()
        loss.backward()
        for run in (lambda: (a * 1).sum().backward(), lambda: loss.backward()):
            try:
                run()
                M.tensor(0.0).item()  # a remote error shows at the next call that waits
                out.append(None)
            except RuntimeError as e:  # gradserve's AutogradError is one, as torch's
                out.append(str(e).replace("torch.", "gradserve."))
        return out

    assert errors(M) == errors(torch)
    assert "output 0 of Exp, is at version 2; expected version 1" in errors(torch)[0]
    assert "backward through the graph a second time" in errors(torch)[1]


def test_pad_packed_sequence_gives_torchs_graph(M):
    def build(M):
        x = M.tensor(X[:, :2], requires_grad=True)
        packed = M.nn.utils.rnn.pack_padded_sequence(x * 2, [3, 1])
        out, _ = M.nn.utils.rnn.pad_packed_sequence(packed)
        graph = _graph(out.grad_fn)
        (out * out).sum().backward()
        return graph, np.asarray(out.detach().tolist()), (np.asarray(x.grad.tolist()),)

    _same(build(M), build(torch))


def test_a_quiet_session_with_a_copyslices_moves_whole(tmp_path):
    """The state dir writes a CopySlices with the write's node inside (copy_, add_ save
    nothing), and a backward after the move runs as it would have."""
    import time

    from gradserve import engine
    from gradserve.engine.seam import unpack, why_not_quiet
    from gradserve.server._sessions import Session
    from gradserve.server._state import StateDir

    def build():
        w = engine.tensor([1.0, 2.0, 3.0], requires_grad=True)
        v = engine.tensor([5.0, 6.0], requires_grad=True)
        a = w + 0.0
        a[1:].add_(v)
        a[0] = v[1]
        b = w + 0.0
        b[:2].mul_(v)  # MulBackward0 keeps v and b's old values for backward
        return {"w": w, "v": v, "a": a}, b

    def more(t):
        (t["a"] * 2).sum().backward()
        return t["w"].grad.tolist(), t["v"].grad.tolist(), type(t["a"].grad_fn).__name__

    tensors, pending = build()
    assert "(MulBackward0) whose saved tensors" in why_not_quiet({"b": pending})
    session = Session("s" * 22, "alice", "cpu", time.monotonic)
    session.tensors.update(tensors)
    writer, reader = StateDir(tmp_path, "writer"), StateDir(tmp_path, "reader")
    writer.save(session)
    with reader.claim(session.id) as (arrays, meta):
        moved, _ = unpack(arrays, meta, meta["device"])
    assert more(moved) == more(build()[0]) == ([0.0, 2.0, 2.0], [2.0, 4.0], "CopySlices")
