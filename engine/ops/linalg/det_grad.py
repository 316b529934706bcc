"""The gradients of `linalg.det` and `linalg.slogdet` as torch 2.13 computes them, singular
matrices included.

torch's `linalg_det_backward` takes two paths. Without a graph of the gradient (a plain
backward) it solves with the LU factors, their zero pivots nudged by eps, for
`g * det * A^-T`: at a singular matrix (det exactly 0) that is 0, whatever the matrix's rank.
With create_graph it is torch's composition, node for node: `linalg.solve(A^T, D^T)` with
`D = diag_embed(g * det)`, and where |det| < 100 eps the SVD form of the cofactor matrix,
`(U * prod_safe_zeros_backward(det(U) det(Vh) g, S)) @ Vh` (defined at any rank and
differentiable at rank n-1); a batch that holds both kinds is filled by index_put (torch's
masked_fmap). A 1x1 matrix's gradient is g everywhere (torch's special case).
"""

from __future__ import annotations

import numpy as np

from ...core import grad_mode as _grad_mode
from ...core.backend import backend
from ...core.errors import InvalidArgumentError
from ...surface.tensor_api import cat, where


def _mT(x):
    return x.transpose(-1, -2)


def _eye(x, dtype: str):
    return x._op("eye", n=x.shape[-1], dtype=dtype, device=x.device)


def det_backward(a, det, g):
    """The gradient of det(a) (output `det`) for the gradient `g` of that output."""
    if a.shape[-1] == 1:  # torch's: g itself, through no op of a
        return g.unsqueeze(-1).unsqueeze(-1).expand(*a.shape)
    if _grad_mode.is_grad_enabled():
        return _det_backward_graph(a, det, g)
    scale = (g * det).unsqueeze(-1).unsqueeze(-1)
    try:  # inv refuses exactly the matrices whose LU (and so det) has a zero pivot
        return scale * _mT(a._op("linalg_inv", a))
    except InvalidArgumentError:
        pass
    # the nonsingular formula on matrices made invertible where det is 0 (the identity
    # there, whose gradient is then scaled by det = 0)
    safe = where((det == 0).unsqueeze(-1).unsqueeze(-1), _eye(a, a.dtype.name), a)
    return scale * _mT(safe._op("linalg_inv", safe))


def _det_backward_graph(a, det, g):
    """torch's create_graph branch of linalg_det_backward, op for op (its graph's nodes)."""
    d = _mT((g * det).unsqueeze(-1).expand(*a.shape[:-1]).diag_embed())
    near = det.abs() < 100 * float(np.finfo(a.dtype.np).eps)
    if a.ndim == 2:
        return _cofactors(a, g) if bool(near) else _solved(a, d)
    picked = a[near]
    if picked.numel() == a.numel():
        return _cofactors(a, g)
    if picked.numel() == 0:
        return _solved(a, d)
    out = a.new_empty(tuple(a.shape))
    out[near] = _cofactors(picked, g[near])
    far = near.logical_not()
    out[far] = _solved(a[far], d[far])
    return out


def _solved(a, d):
    """linalg.solve(A^T, D): the cofactors g det A^-T of an invertible A."""
    return a._op("linalg_solve", _mT(a), d)


def _cofactors(a, g):
    """g times the cofactor matrix of `a` from its SVD: det(U) det(Vh) U diag(prod of the
    other singular values) Vh."""
    u, s, vh = a._op("linalg_svd", a, full_matrices=True)
    alpha = u._op("linalg_det", u) * vh._op("linalg_det", vh) * g
    return (u * _prod_others_backward(alpha.unsqueeze(-1), s).unsqueeze(-2)).matmul(vh)


def _prod_others_backward(grad, s):
    """torch's prod_safe_zeros_backward over the last dim: grad times the product of the
    other entries, from exclusive cumulative products both ways."""
    n = s.shape[-1]
    if n == 1:
        return grad
    ones = s.new_ones(tuple(s.shape[:-1]) + (1,))
    before = cat([ones, s.narrow(-1, 0, n - 1)], -1).cumprod(-1)
    after = cat([ones, s.narrow(-1, 1, n - 1).flip(-1)], -1).cumprod(-1).flip(-1)
    return grad * (before * after)


def slogdet_backward(a, g):
    """The gradient of slogdet's logabsdet, `g * a^-T`, as torch's. Where a matrix is
    singular torch calls it not differentiable: a plain backward solves with the LU factors
    anyway (`lu_solve_transposed`), so the zero pivot gives infinities and NaNs (torch's,
    from MKL's solver, fall in places that differ), and with create_graph torch's
    linalg.solve refuses the matrix with its error."""
    try:
        return g.unsqueeze(-1).unsqueeze(-1) * _mT(a._op("linalg_inv", a))
    except InvalidArgumentError:
        pass
    be = backend(a._device)
    if _grad_mode.is_grad_enabled():
        where_ = ""
        if len(a.shape) > 2:
            with _grad_mode.set_grad_enabled(False):
                sign = a._op("linalg_slogdet", a)[0]
            first = int(np.flatnonzero(be.to_host(sign._data).reshape(-1) == 0)[0])
            where_ = f"(Batch element {first}): "
        raise InvalidArgumentError(f"torch.linalg.solve: {where_}The solver failed because "
                                   "the input matrix is singular.")
    x = lu_solve_transposed(be.to_host(a._data), be.to_host(g._data))
    return type(a)._from_saved(be.from_host(x), a._device, a.dtype)


def lu_solve_transposed(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """`g * a^-T` per matrix as the reference LAPACK getf2 then getrs('T') compute it:
    partial pivoting that leaves a zero column unpivoted and unscaled, then U^T y = g I
    forward and L^T w = y back, a division by a zero pivot giving an infinity (a NaN for
    0 / 0), and the rows put back in the pivots' order."""
    n = a.shape[-1]
    mats = a.reshape(-1, n, n)
    gs = np.broadcast_to(g, a.shape[:-2]).reshape(-1)
    out = np.empty_like(mats)
    with np.errstate(divide="ignore", invalid="ignore"):
        for b, (mat, gb) in enumerate(zip(mats, gs, strict=True)):
            lu, swaps = mat.copy(), []
            for k in range(n):
                p = k + int(np.argmax(np.abs(lu[k:, k])))
                swaps.append(p)
                if lu[p, k] != 0:
                    lu[[k, p]] = lu[[p, k]]
                    lu[k + 1:, k] /= lu[k, k]
                lu[k + 1:, k + 1:] -= np.outer(lu[k + 1:, k], lu[k, k + 1:])
            y = np.eye(n, dtype=mat.dtype) * gb
            for i in range(n):  # U^T y = g I, forward
                y[i] = (y[i] - np.sum(lu[:i, i, None] * y[:i], axis=0)) / lu[i, i]
            for i in range(n - 2, -1, -1):  # L^T w = y, back (unit diagonal)
                y[i] = y[i] - np.sum(lu[i + 1:, i, None] * y[i + 1:], axis=0)
            for k in range(n - 1, -1, -1):  # the row swaps, undone last to first
                y[[k, swaps[k]]] = y[[swaps[k], k]]
            out[b] = y
    return out.reshape(a.shape)
