"""torch's one-kernel margin losses, each one node as in torch: soft_margin_loss
(SoftMarginLossBackward0) and multi_margin_loss (MultiMarginLossBackward0). Only the input
takes a gradient (torch's nodes have that one edge; a target or weight that requires one is
refused by gradserve.nn.functional with torch's text). The backward rules are written with
tensor methods, so they are differentiable again (double backward, as torch's).

    >>> from gradserve import engine
    >>> x, y = engine.tensor([0., 1.]), engine.tensor([1., -1.])
    >>> x._op("soft_margin_loss", x, y, reduction="sum")
    tensor(2.0064)
"""

from __future__ import annotations

from ...core.dtype import TORCH_SCALAR_NAMES, int64
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes, numel, shape_of
from ..edges import edges_of
from .fused import _check_reduction


def _reduced(losses, reduction):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


# -- soft margin: log(1 + exp(-y x)) ----------------------------------------------------------
def _soft_meta(x, y, reduction="mean"):
    _check_reduction(reduction)
    shape = broadcast_shapes(x.shape, shape_of(y))
    return Meta(shape if reduction == "none" else (), x.dtype)


def _soft(xp, x, y, reduction="mean"):
    losses = xp.log1p(xp.exp(-y * x)).astype(x.dtype, copy=False)
    return _reduced(losses, reduction)


soft_margin = defop("soft_margin_loss", infer=_soft_meta,
                    grad_name=edges_of("SoftMarginLossBackward0", (0,)), save=(0, 1))(_soft)


@soft_margin.def_backward
def _(ctx, g):
    x, y = ctx.saved
    d = -y * (-y * x).sigmoid()  # d/dx log1p(exp(-y x))
    if ctx.attrs.get("reduction", "mean") == "mean":
        g = g / d.numel()
    return (g * d,)


# -- multi margin: sum over i != y of max(0, margin - x[y] + x[i])^p * w[y], over C -------------
def _multi_meta(x, target, weight, p=1, margin=1.0, reduction="mean"):
    _check_reduction(reduction)
    if p not in (1, 2):
        raise InvalidArgumentError("only p == 1 and p == 2 supported")
    shape = tuple(x.shape)
    if len(shape) > 2 or numel(shape) == 0:
        raise InvalidArgumentError("Expected non-empty vector or matrix with optional 0-dim "
                                   f"batch size, but got: {list(shape)}")
    for t, want in ((target, int64), (weight, x.dtype)):
        dtype = getattr(t, "dtype", None)
        if dtype is not None and dtype is not want:
            raise InvalidArgumentError(f"expected scalar type {TORCH_SCALAR_NAMES[want.name]} "
                                       f"but found {TORCH_SCALAR_NAMES[dtype.name]}")
    rows = shape[0] if len(shape) == 2 else 1
    if numel(target.shape) != rows or len(target.shape) > 1:
        raise InvalidArgumentError(
            "multi_margin_loss: target tensor should be 1-D with size equal to the number of "
            f"input samples (batch size). Expected target size [{rows}], but got "
            f"{list(target.shape)}. Input has shape {list(shape)}.")
    if reduction != "none":
        return Meta((), x.dtype)
    return Meta((rows,) if len(shape) == 2 else (), x.dtype)


def _margins(xp, x, t, margin):
    """(the rows as (N, C), margin - x[y] + x[i] for every class, the true classes)."""
    rows = x.reshape(-1, x.shape[-1])
    t = t.reshape(-1, 1)
    if xp.any((t < 0) | (t >= rows.shape[1])):
        raise InvalidArgumentError("target out of range")
    return rows, margin - xp.take_along_axis(rows, t, 1) + rows, t


def _multi(xp, x, target, weight, p=1, margin=1.0, reduction="mean"):
    rows, z, t = _margins(xp, x, target, margin)
    z = xp.maximum(z, 0)
    if p == 2:
        z = z * z
    if getattr(weight, "shape", None) is not None:
        z = z * weight[t]
    xp.put_along_axis(z, t, 0, 1)  # the true class is no margin
    losses = (z.sum(1) / rows.shape[1]).astype(x.dtype, copy=False)
    if x.ndim < 2:
        losses = losses.reshape(())
    return _reduced(losses, reduction)


multi_margin = defop("multi_margin_loss", infer=_multi_meta,
                     grad_name=edges_of("MultiMarginLossBackward0", (0,)), save=(0, 1, 2))(_multi)


@multi_margin.def_backward
def _(ctx, g):
    x, target, weight = ctx.saved
    p, margin = ctx.attrs.get("p", 1), ctx.attrs.get("margin", 1.0)
    classes = x.shape[-1]
    rows = x.reshape(-1, classes)
    t = target.reshape(-1, 1)
    z = rows - rows.gather(1, t) + margin
    d = (z > 0).to(z.dtype)
    if p == 2:
        d = d * 2 * z
    d = d / classes
    if getattr(weight, "shape", None) is not None:
        d = d * weight.index_select(0, t.reshape(-1)).reshape(-1, 1)
    d = d.scatter(1, t, 0.0)
    # x[y] takes minus the sum of the other classes' gradients
    d = d - d.new_zeros(d.shape).scatter(1, t, 1.0) * d.sum(1, keepdim=True)
    reduction = ctx.attrs.get("reduction", "mean")
    if reduction == "mean":
        g = g / rows.shape[0]
    g = g.reshape(-1, 1) if reduction == "none" else g
    return ((g * d).reshape(tuple(x.shape)),)

