"""`out=` on module functions (API.md section 7) against torch, on both tensor kinds: the
result lands in `out` (returned), with torch's dtype rule, its resizing (and warning) and its
errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch  # the oracle

X = np.arange(6, dtype=np.float32).reshape(2, 3) / 4 + 0.5
Y = np.linspace(1, 2, 6, dtype=np.float32).reshape(2, 3)

CALLS = {  # name -> fn(L, x, y, out)
    "add": lambda L, x, y, o: L.add(x, y, out=o),
    "add_alpha": lambda L, x, y, o: L.add(x, y, alpha=2, out=o),
    "sub": lambda L, x, y, o: L.sub(x, 1.5, out=o),
    "mul": lambda L, x, y, o: L.mul(x, y, out=o),
    "div": lambda L, x, y, o: L.div(x, y, out=o),
    "pow": lambda L, x, y, o: L.pow(x, 2, out=o),
    "matmul": lambda L, x, y, o: L.matmul(x, y.T, out=o),
    "mm": lambda L, x, y, o: L.mm(x.T, y, out=o),
    "bmm": lambda L, x, y, o: L.bmm(x.unsqueeze(0), y.T.unsqueeze(0), out=o),
    "cat": lambda L, x, y, o: L.cat([x, y], 1, out=o),
    "stack": lambda L, x, y, o: L.stack([x, y], out=o),
    "exp": lambda L, x, y, o: L.exp(x, out=o),
    "sqrt": lambda L, x, y, o: L.sqrt(x, out=o),
    "sum": lambda L, x, y, o: L.sum(x, 1, out=o),
    "clamp": lambda L, x, y, o: L.clamp(x, 0.7, 1.2, out=o),
    "maximum": lambda L, x, y, o: L.maximum(x, y, out=o),
    "where": lambda L, x, y, o: L.where(x > 1, x, y, out=o),
    "eq": lambda L, x, y, o: L.eq(x, y, out=o),
    "tensordot": lambda L, x, y, o: L.tensordot(x, y, dims=([1], [1]), out=o),
}
OUTS = {  # what `out` starts as: (shape, dtype name)
    "right": None, "empty": ((0,), None), "other_shape": ((7,), None),
    "float64": (None, "float64"), "int64": (None, "int64"), "bool": (None, "bool"),
}


def _run(L, name, out_kind):
    x, y = L.tensor(X), L.tensor(Y)
    want = CALLS[name](L, x, y, None)
    spec = OUTS[out_kind]
    shape = tuple(want.shape) if spec is None or spec[0] is None else spec[0]
    dtype = want.dtype if spec is None or spec[1] is None else getattr(L, spec[1])
    out = L.zeros(shape, dtype=dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = CALLS[name](L, x, y, out)
        except (RuntimeError, TypeError) as e:
            kind = "RuntimeError" if isinstance(e, RuntimeError) else "TypeError"
            return ("raises", kind, str(e))
    resized = [str(w.message).split(" (Triggered internally")[0] for w in caught
               if "resized" in str(w.message)]
    return (got is out, str(out.dtype).split(".")[-1], list(out.shape), out.tolist(), resized)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_out_matches_torch(M, name):
    for kind in OUTS:
        ours, theirs = _run(M, name, kind), _run(torch, name, kind)
        if theirs[0] == "raises":
            assert ours == theirs, kind
            continue
        assert ours[:3] == theirs[:3], (kind, ours, theirs)
        if True:
            np.testing.assert_allclose(np.asarray(ours[3], float), np.asarray(theirs[3], float),
                                       rtol=1e-6, err_msg=kind)
            assert ours[4] == theirs[4], kind


def test_out_refuses_arguments_that_require_grad(M):
    for L in (M, torch):
        x = L.ones(2, requires_grad=True)
        for f in (lambda L=L, x=x: L.mul(x, 2, out=L.empty(2)),
                  lambda L=L, x=x: L.cat([x, x], out=L.empty(4))):
            with pytest.raises(RuntimeError, match=r"\(\): functions with out=\.\.\. arguments "
                               "don't support automatic differentiation"):
                f()
        with L.no_grad():
            o = L.empty(2)
            assert L.mul(x, 2, out=o) is o and o.requires_grad is False


def test_out_bumps_the_version_once(M):
    for L in (M, torch):
        o = L.empty(2, 3)
        v = o._version
        L.exp(L.ones(2, 3), out=o)
        assert o._version == v + 1
