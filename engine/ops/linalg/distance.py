"""`cdist`: p-norm distances between the rows of two batches of matrices, as torch's
kernels: `cdist` (`CdistBackward0`, an edge to each input), and for p = 2 on more than 25
rows (or when `compute_mode` asks) `euclidean_dist` (`EuclideanDistBackward0`), which goes
through a matrix product (|a|^2 + |b|^2 - 2 a.b, clamped at 0, then the square root) as
torch's does, so values agree with torch's to rounding. Both backwards are torch's, written
in engine ops, so they are differentiable again.

    >>> from gradserve import engine
    >>> a = engine.tensor([[0., 0.], [3., 4.]], requires_grad=True)
    >>> d = a._op("cdist", a, a, p=2.0)
    >>> d.tolist(), type(d.grad_fn).__name__
    ([[0.0, 5.0], [5.0, 0.0]], 'CdistBackward0')
"""

from __future__ import annotations

import math

from ...core.dtype import promote
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from ..edges import zero_grads

_MODES = (None, "use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
          "donot_use_mm_for_euclid_dist")


def _meta(x1, x2, *, p, compute_mode=None):
    if len(x1.shape) < 2 or len(x2.shape) < 2:
        raise InvalidArgumentError(
            f"cdist only supports at least 2D tensors, X{1 if len(x1.shape) < 2 else 2} got: "
            f"{min(len(x1.shape), len(x2.shape))}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise InvalidArgumentError(
            f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: "
            f"{x2.shape[-1]}")
    if not (x1.dtype.is_floating_point and x2.dtype.is_floating_point):
        raise InvalidArgumentError(
            f"cdist only supports floating-point dtypes, X1 got: {x1.dtype.name}")
    if p < 0:
        raise InvalidArgumentError("cdist only supports non-negative p values")
    if compute_mode not in _MODES:
        raise InvalidArgumentError(f"{compute_mode} is not a valid value for compute_mode")
    batch = broadcast_shapes(tuple(x1.shape[:-2]), tuple(x2.shape[:-2]))
    return Meta(tuple(batch) + (x1.shape[-2], x2.shape[-2]), promote(x1.dtype, x2.dtype))


def use_mm(p, r1: int, r2: int, compute_mode) -> bool:
    """Whether torch computes this cdist through euclidean_dist (a matrix product)."""
    if p != 2 or compute_mode == "donot_use_mm_for_euclid_dist":
        return False
    return compute_mode == "use_mm_for_euclid_dist" or r1 > 25 or r2 > 25


def _cdist(xp, x1, x2, *, p, compute_mode=None):
    dtype = xp.result_type(x1, x2)
    x1, x2 = x1.astype(dtype, copy=False), x2.astype(dtype, copy=False)
    diff = xp.abs(x1[..., :, None, :] - x2[..., None, :, :])
    if p == 0:
        return (diff != 0).sum(-1).astype(dtype)
    if math.isinf(p):
        return diff.max(-1) if diff.shape[-1] else diff.sum(-1)
    if p == 1:
        return diff.sum(-1)
    if p == 2:
        return xp.sqrt((diff * diff).sum(-1))
    return (diff ** p).sum(-1) ** (1.0 / p)


cdist = defop("cdist", infer=_meta, grad_name="CdistBackward0", save=(0, 1), save_output=True,
              attrs=("p", "compute_mode"))(_cdist)


@cdist.def_backward
def _(ctx, g):
    x1, x2 = ctx.saved
    dist = ctx.output.unsqueeze(-1)
    p = ctx.attrs["p"]
    if p == 0:  # torch's zeros (never NaN from an infinite g, nor -0.0 for x2)
        return zero_grads(ctx, g)
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # (..., P, R, M)
    gd = g.unsqueeze(-1)
    if p == 1:
        grad = gd * diff.sign()
    elif math.isinf(p):
        grad = gd * diff.sign() * (diff.abs() == dist).to(diff.dtype)
    else:
        zero = dist == 0
        if p < 1:
            zero = zero + (diff == 0)
        scaled = diff / dist.masked_fill(dist == 0, 1.0) if p == 2 else \
            diff.sign() * diff.abs() ** (p - 1) / dist.masked_fill(dist == 0, 1.0) ** (p - 1)
        grad = (gd * scaled).masked_fill(zero, 0.0)
    g1 = grad.sum(-2) if ctx.needs[0] else None
    g2 = -grad.sum(-3) if ctx.needs[1] else None
    return g1, g2


def _euclid_meta(x1, x2):
    return _meta(x1, x2, p=2.0)


def _euclid(xp, x1, x2):
    dtype = xp.result_type(x1, x2)
    x1, x2 = x1.astype(dtype, copy=False), x2.astype(dtype, copy=False)
    n1 = (x1 * x1).sum(-1)[..., :, None]
    n2 = (x2 * x2).sum(-1)[..., None, :]
    sq = n1 + n2 - 2 * xp.matmul(x1, xp.swapaxes(x2, -1, -2))
    return xp.sqrt(xp.maximum(sq, 0))


euclidean_dist = defop("euclidean_dist", infer=_euclid_meta, grad_name="EuclideanDistBackward0",
                       save=(0, 1), save_output=True)(_euclid)


@euclidean_dist.def_backward
def _(ctx, g):
    x1, x2 = ctx.saved
    dist = ctx.output
    ratio = (g / dist.masked_fill(dist == 0, 1.0)).masked_fill(dist == 0, 0.0)
    g1 = x1 * ratio.sum(-1, keepdim=True) - ratio.matmul(x2) if ctx.needs[0] else None
    g2 = x2 * ratio.sum(-2).unsqueeze(-1) - ratio.mT.matmul(x1) if ctx.needs[1] else None
    return g1, g2
