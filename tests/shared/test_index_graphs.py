"""`x[key]` records torch's nodes, on both tensor kinds: a tuple key is applied item by item
(a select per int, a slice per slice that changes the dim, an unsqueeze per None, then one
index for the tensors, lists and masks), a bare key is one node, a key that changes nothing an
alias. Compared with torch's whole grad_fn graph, values, gradients and error texts, over
keys mixing every kind of item (one `...` each: torch reads a second one its own way, which
gradserve refuses)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

A = np.random.default_rng(4).standard_normal((3, 4, 5)).astype(np.float32)
S = slice
ITEMS = [0, -1, 2, None, Ellipsis, S(None), S(1, None), S(None, 2), S(0, 10), S(-3, None),
         S(None, None, 2), S(0, 4), [0, 2], "index", "mask"]
KEYS = [0, -2, S(None), S(1, 3), None, Ellipsis, "index", "mask", [2, 0]]  # bare keys
KEYS += [k for k in itertools.product(ITEMS, repeat=2) if k.count(Ellipsis) < 2]
KEYS += [(None, S(None), 0), (0, S(1, None), None, 2), (Ellipsis, 0, None), ("index", 0),
         (0, "index"), (None, "index", 1), (S(1, None), [0, 2]), ("mask", None, 3),
         (S(None), "index", S(None), "index"), (0, 9), (None, 0, 9), (S(None), None, 7),
         (0, 0, 0, 0), (1, Ellipsis, S(None, None, 2), None), ()]


def _key(M, key):
    def item(k):
        if k == "index":
            return M.tensor([1, 0])
        if k == "mask":
            return M.tensor([True, False, True])
        return k

    return tuple(item(k) for k in key) if isinstance(key, tuple) else item(key)


def _graph(fn, depth=0, out=None):
    out = [] if out is None else out
    out.append("  " * depth + (type(fn).__name__ if fn is not None else "None"))
    for f, _ in (fn.next_functions if fn is not None else ()):
        _graph(f, depth + 1, out)
    return out


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_getitem_graph_is_torchs(ns, key):
    tx = torch.tensor(A, requires_grad=True)
    x = ns.tensor(A, requires_grad=True)
    try:
        ty = tx[_key(torch, key)]
    except IndexError as e:
        with pytest.raises(IndexError) as ours:
            x[_key(ns, key)]
        assert str(ours.value) == str(e)
        return
    y = x[_key(ns, key)]
    assert tuple(y.shape) == tuple(ty.shape)
    assert _graph(y.grad_fn) == _graph(ty.grad_fn)
    np.testing.assert_array_equal(y.detach().cpu().numpy(), ty.detach().numpy())
    w = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(np.float32)
    (y * ns.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), tx.grad.numpy(), rtol=1e-6)
