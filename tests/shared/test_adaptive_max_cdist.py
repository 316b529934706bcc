"""adaptive_max_pool1d/2d with `return_indices` (functional and nn modules) and cdist on both
of torch's paths (direct and through a matrix product), against torch on both tensor kinds:
values, torch's indices, gradients and grad_fn names. (Their float64 first- and second-order
gradchecks: tests/engine/test_gradcheck.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle
import torch.nn.functional as TF

rng = np.random.default_rng(7)


def _pair(M, x):
    return M.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


POOL = [
    ("2d_uneven", (2, 3, 5, 7), (3, 4)),
    ("2d_even", (1, 2, 4, 6), (2, 3)),
    ("2d_none", (1, 2, 5, 4), (None, 2)),
    ("2d_unbatched", (3, 5, 5), 2),
    ("2d_ties", "ties", (2, 2)),
    ("1d", (2, 3, 7), 3),
    ("1d_unbatched", (3, 9), 4),
]


@pytest.mark.parametrize("name,shape,size", POOL, ids=[p[0] for p in POOL])
def test_adaptive_max_pool_with_indices_is_torchs(M, name, shape, size):
    x = np.round(rng.standard_normal((1, 1, 4, 4)) * 2) / 2 if shape == "ties" else \
        rng.standard_normal(shape)
    ours, theirs = _pair(M, x)
    one_d = name.startswith("1d")
    f = "adaptive_max_pool1d" if one_d else "adaptive_max_pool2d"
    ov, oi = getattr(M.nn.functional, f)(ours, size, return_indices=True)
    tv, ti = getattr(TF, f)(theirs, size, return_indices=True)
    np.testing.assert_array_equal(ov.detach().cpu().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(oi.cpu().numpy(), ti.numpy())
    assert oi.dtype == M.int64
    assert type(ov.grad_fn).__name__ == type(tv.grad_fn).__name__
    w = np.linspace(-1, 1, tv.numel()).reshape(tuple(tv.shape))
    (ov * M.tensor(w)).sum().backward()
    (tv * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.grad.cpu().numpy(), theirs.grad.numpy(), atol=1e-12)
    # without return_indices: the values alone, the same node
    alone = getattr(M.nn.functional, f)(M.tensor(x), size)
    np.testing.assert_array_equal(alone.cpu().numpy(), tv.detach().numpy())


@pytest.mark.parametrize("cls,shape,size", [("AdaptiveMaxPool2d", (2, 3, 5, 7), (2, 3)),
                                            ("AdaptiveMaxPool1d", (2, 3, 8), 3)])
def test_adaptive_max_pool_modules_return_indices(M, cls, shape, size):
    x = rng.standard_normal(shape)
    ov, oi = getattr(M.nn, cls)(size, return_indices=True)(M.tensor(x))
    tv, ti = getattr(torch.nn, cls)(size, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(ov.cpu().numpy(), tv.numpy())
    np.testing.assert_array_equal(oi.cpu().numpy(), ti.numpy())
    assert repr(getattr(M.nn, cls)(size)) == repr(getattr(torch.nn, cls)(size))


def test_adaptive_max_pool_errors_are_torchs(M):
    with pytest.raises((RuntimeError, M.InvalidArgumentError), match="Expected 3D or 4D"):
        M.nn.functional.adaptive_max_pool2d(M.tensor(rng.standard_normal((2, 3))), 1)


CDIST = [
    ("p2_small", (4, 3), (5, 3), {}),
    ("p2_mm_rows", (30, 3), (4, 3), {}),
    ("p2_mm_mode", (3, 4), (2, 4), {"compute_mode": "use_mm_for_euclid_dist"}),
    ("p2_no_mm", (30, 3), (4, 3), {"compute_mode": "donot_use_mm_for_euclid_dist"}),
    ("p1_batched", (2, 4, 3), (2, 5, 3), {"p": 1}),
    ("p3_broadcast", (2, 4, 3), (5, 3), {"p": 3}),
    ("pinf", (4, 3), (2, 3), {"p": float("inf")}),
    ("p0", (4, 3), (2, 3), {"p": 0}),
]


@pytest.mark.parametrize("name,s1,s2,kw", CDIST, ids=[c[0] for c in CDIST])
def test_cdist_is_torchs(M, name, s1, s2, kw):
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    (oa, ta), (ob, tb) = _pair(M, a), _pair(M, b)
    o, t = M.cdist(oa, ob, **kw), torch.cdist(ta, tb, **kw)
    np.testing.assert_allclose(o.detach().cpu().numpy(), t.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    assert type(o.grad_fn).__name__ == type(t.grad_fn).__name__
    w = np.linspace(-1, 1, t.numel()).reshape(tuple(t.shape))
    (o * M.tensor(w)).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    for ours, theirs in ((oa, ta), (ob, tb)):
        np.testing.assert_allclose(ours.grad.cpu().numpy(), theirs.grad.numpy(), atol=1e-10)


def test_cdist_of_a_row_with_itself_has_torchs_zero_gradient(M):
    x = rng.standard_normal((3, 2))
    (o, t) = _pair(M, x)
    M.cdist(o, o).sum().backward()
    torch.cdist(t, t).sum().backward()
    np.testing.assert_allclose(o.grad.cpu().numpy(), t.grad.numpy(), atol=1e-12)
