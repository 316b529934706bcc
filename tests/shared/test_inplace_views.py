"""torch's in-place view ops (`transpose_`, `swapaxes_`, `swapdims_`, `t_`) and
`nn.utils.rnn.unpad_sequence`, which transposes a `batch_first=False` batch in place, on
engine tensors and on a session (cpu and the GPU kind), with torch as the oracle: shapes,
strides, versions, grad_fn graphs (the tensor's, its views' made before and after), values
after writes through the old views, and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

X = np.arange(6.0).reshape(3, 2) / 4 - 0.5


def _graph(fn):
    if fn is None:
        return None
    return type(fn).__name__, tuple(_graph(nxt) for nxt, _ in fn.next_functions)


def _values(t):
    return np.asarray(t.detach().tolist())


def _run(M):
    out = []
    x = M.tensor(X, requires_grad=True)
    y = x * 1.0
    v, w = y[0], y[:, 1]  # views made before the change
    assert y.transpose_(0, 1) is y
    out.append((tuple(y.shape), y.stride(), y._version, y.is_leaf, y._base is None,
                _graph(y.grad_fn), _graph(v.grad_fn), _graph(w.grad_fn)))
    z = y[1]  # a view made after it
    out.append(_graph(z.grad_fn))
    v.mul_(2.0)  # a write through an old view, into the transposed root
    out.append((_graph(y.grad_fn), _graph(z.grad_fn), _values(y), _values(z), _values(w)))
    weights = M.tensor(np.arange(6.0).reshape(2, 3))
    ((y * weights).sum() + (w * 3).sum() + (z * z).sum()).backward()
    out.append(_values(x.grad))
    return out


def _same(ours, theirs):
    if isinstance(theirs, np.ndarray):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    elif isinstance(theirs, (tuple, list)) and any(isinstance(t, np.ndarray) for t in theirs):
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs, strict=True):
            _same(o, t)
    else:
        assert ours == theirs


def test_transpose_in_place_is_torchs(M):
    ours, theirs = _run(M), _run(torch)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs, strict=True):
        _same(o, t)


@pytest.mark.parametrize("call", ["swapaxes_(0, 1)", "swapdims_(1, 0)", "t_()",
                                  "transpose_(-1, 0)"])
def test_the_other_in_place_view_ops(M, call):
    def run(L):
        x = L.tensor(X, requires_grad=True)
        y = (x * 1.0)[1:]  # a view: it stays one, its grad_fn the op's node over its own
        eval(f"y.{call}")
        graph = _graph(y.grad_fn)
        (y * y).sum().backward()
        return tuple(y.shape), graph, y._base is not None, _values(x.grad)

    ours, theirs = run(M), run(torch)
    assert ours[:3] == theirs[:3]
    np.testing.assert_allclose(ours[3], theirs[3], rtol=1e-12)


def test_in_place_view_op_errors_and_no_grad(M):
    def run(L):
        x = L.tensor(X, requires_grad=True)
        try:
            x.transpose_(0, 1)
            error = None
        except RuntimeError as e:
            error = str(e)
        y = x * 1.0
        with L.no_grad():
            y.transpose_(0, 1)  # torch leaves the grad_fn as it was
        plain = L.tensor(X)
        plain.t_()
        return error, tuple(y.shape), _graph(y.grad_fn), plain.grad_fn, plain._version

    assert run(M) == run(torch)


@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_sequence_is_torchs(M, batch_first):
    def run(L):
        x = L.tensor(np.arange(24.0).reshape(4, 3, 2) / 7, requires_grad=True)
        padded = x * 1.0
        if batch_first:
            padded = padded.transpose(0, 1)
        lengths = L.tensor([4, 2, 1]) if L is torch else [4, 2, 1]
        seqs = L.nn.utils.rnn.unpad_sequence(padded, lengths, batch_first=batch_first)
        graphs = [_graph(s.grad_fn) for s in seqs]
        after = (tuple(padded.shape), padded._version, _graph(padded.grad_fn))
        sum((s * s).sum() * (k + 1) for k, s in enumerate(seqs)).backward()
        return graphs, after, [_values(s) for s in seqs], _values(x.grad)

    ours, theirs = run(M), run(torch)
    assert ours[:2] == theirs[:2]
    for o, t in zip(ours[2] + [ours[3]], theirs[2] + [theirs[3]], strict=True):
        np.testing.assert_allclose(o, t, rtol=1e-12)


def test_unpad_sequence_wants_one_length_per_sequence(M):
    def error(L):
        lengths = L.tensor([4, 2]) if L is torch else [4, 2]
        with pytest.raises(ValueError) as e:
            L.nn.utils.rnn.unpad_sequence(L.tensor(np.ones((4, 3, 2))), lengths)
        return str(e.value)

    assert error(M) == error(torch)
