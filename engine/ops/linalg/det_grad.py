"""The gradients of `linalg.det` and `linalg.slogdet` as torch 2.13 computes them, singular
matrices included.

torch's `linalg_det_backward` takes two paths. Without a graph of the gradient (a plain
backward) it solves with the LU factors, their zero pivots nudged by eps, for
`g * det * A^-T`: at a singular matrix (det exactly 0) that is 0, whatever the matrix's rank.
With create_graph it takes, where det is exactly 0, the SVD form of the cofactor matrix,
`g * det(U) det(Vh) * U diag(prod_{j != i} s_j) Vh` (defined at any rank and
differentiable at rank n-1), and the solve elsewhere. A 1x1 matrix's gradient is g
everywhere (torch's special case). Values here are torch's; the nodes of the gradient's own
graph (create_graph) are gradserve's ops, not torch's index_put over both branches.
"""

from __future__ import annotations

import numpy as np

from ...core import grad_mode as _grad_mode
from ...core.backend import backend
from ...core.errors import InvalidArgumentError
from ...surface.tensor_api import where


def _mT(x):
    return x.transpose(-1, -2)


def _eye(x, dtype: str):
    return x._op("eye", n=x.shape[-1], dtype=dtype, device=x.device)


def det_backward(a, det, g):
    """The gradient of det(a) (output `det`) for the gradient `g` of that output."""
    n = a.shape[-1]
    scale = g.unsqueeze(-1).unsqueeze(-1)
    if n == 1:  # torch's: g itself, through no op of a
        return scale.expand(*a.shape)
    scale = scale * det.unsqueeze(-1).unsqueeze(-1)
    try:  # inv refuses exactly the matrices whose LU (and so det) has a zero pivot
        return scale * _mT(a._op("linalg_inv", a))
    except InvalidArgumentError:
        pass
    # the nonsingular formula on matrices made invertible where det is 0 (the identity
    # there, whose gradient is then scaled by det = 0)
    mask = (det == 0).unsqueeze(-1).unsqueeze(-1)
    safe = where(mask, _eye(a, a.dtype.name), a)
    solved = scale * _mT(safe._op("linalg_inv", safe))
    if not _grad_mode.is_grad_enabled():
        return solved
    return where(mask, g.unsqueeze(-1).unsqueeze(-1) * cofactors(a), solved)


def cofactors(a):
    """The cofactor matrix of `a` (det(a) * a^-T where a is invertible), from its SVD:
    det(U) det(Vh) * U diag(prod of the other singular values) Vh."""
    u, s, vh = a._op("linalg_svd", a, full_matrices=False)
    sign = u._op("linalg_det", u) * vh._op("linalg_det", vh)
    others = s._op("prod_others", s, dim=-1) * sign.unsqueeze(-1)
    return (u * others.unsqueeze(-2)) @ vh


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
