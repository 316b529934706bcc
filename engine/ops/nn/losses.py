"""Fused losses: binary cross-entropy (on probabilities and on logits), smooth L1 and Huber.

`weight` and `pos_weight` are ordinary inputs that may be tensors or the number 1.0 (what
`gradserve.nn.functional` passes when the caller gives none), so one op covers every
combination; gradients reach every input that requires one. Backward is in engine ops.

    >>> from gradserve import engine
    >>> p, y = engine.tensor([0.5, 0.5]), engine.tensor([1., 0.])
    >>> p._op("binary_cross_entropy", p, y, 1.0, reduction="mean")
    tensor(0.6931)
"""

from __future__ import annotations

from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes, shape_of
from ..edges import edges_of, to_edges
from .fused import _check_reduction

_LOG_FLOOR = -100.0  # torch clamps log(p) and log(1 - p) here, so p in {0, 1} stays finite


def _loss_meta(x, y, *extra, reduction="mean", **_):
    _check_reduction(reduction)
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError("expected a floating point input")
    if tuple(shape_of(y)) != tuple(x.shape):
        raise InvalidArgumentError(
            f"Using a target size ({list(shape_of(y))}) that is different to the input size "
            f"({list(x.shape)}) is deprecated. Please ensure they have the same size."
        )
    shape = broadcast_shapes(x.shape, *(shape_of(e) for e in extra))
    if shape != tuple(x.shape):
        raise InvalidArgumentError(f"weight of shape {[list(shape_of(e)) for e in extra]} does "
                                   f"not broadcast to the input's {list(x.shape)}")
    return Meta(tuple(x.shape) if reduction == "none" else (), x.dtype)


def _reduce(losses, reduction):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


def _scale(ctx, g, like):
    """The upstream gradient spread over the elements, as the reduction dictates."""
    reduction = ctx.attrs.get("reduction", "mean")
    if reduction == "mean":
        n = 1
        for s in like.shape:
            n *= s
        return g / n
    return g


def _floor_log(xp, a):
    return xp.maximum(xp.log(a), _LOG_FLOOR)


def _needs(ctx, i):
    return len(ctx.needs) > i and ctx.needs[i]


# -- binary cross-entropy on probabilities ----------------------------------------------------
def _bce(xp, p, y, w, reduction="mean"):
    if xp.any((p < 0) | (p > 1)):
        raise IndexError("all elements of input should be between 0 and 1")
    losses = -w * (y * _floor_log(xp, p) + (1 - y) * _floor_log(xp, 1 - p))
    return _reduce(losses, reduction)


# torch's nodes have edges to the input and the target only (a weight takes no gradient)
bce = defop("binary_cross_entropy", infer=_loss_meta,
            grad_name=edges_of("BinaryCrossEntropyBackward0", (0, 1)), save=(0, 1, 2))(_bce)


@bce.def_backward
def _(ctx, g):
    p, y, w = ctx.saved
    g = _scale(ctx, g, p)
    gp = gy = gw = None
    if ctx.needs[0]:  # torch's form: (p - y) / max(p (1 - p), 1e-12)
        gp = g * w * (p - y) / (p * (1 - p)).clamp(min=1e-12)
    if ctx.needs[1]:
        gy = g * w * ((1 - p).log().clamp(min=_LOG_FLOOR) - p.log().clamp(min=_LOG_FLOOR))
    if _needs(ctx, 2):
        gw = -g * (y * p.log().clamp(min=_LOG_FLOOR) + (1 - y) * (1 - p).log().clamp(
            min=_LOG_FLOOR))
    return to_edges(ctx, (gp, gy, gw))


# -- binary cross-entropy on logits -----------------------------------------------------------
def _softplus_neg(xp, x):
    """log(1 + exp(-x)), stable for either sign."""
    return xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def _bce_logits(xp, x, y, w, pos_weight, reduction="mean"):
    log_weight = (pos_weight - 1) * y + 1
    losses = w * ((1 - y) * x + log_weight * _softplus_neg(xp, x))
    return _reduce(losses, reduction)


bce_logits = defop("binary_cross_entropy_with_logits", infer=_loss_meta,
                   grad_name=edges_of("BinaryCrossEntropyWithLogitsBackward0", (0, 1)),
                   save=(0, 1, 2, 3))(_bce_logits)


def _softplus_neg_t(x):
    """log(1 + exp(-x)) in engine ops: relu(-x) + log(1 + exp(-|x|))."""
    return (-x).relu() + ((-x.abs()).exp() + 1).log()


@bce_logits.def_backward
def _(ctx, g):
    x, y, w, pw = ctx.saved
    g = _scale(ctx, g, x)
    log_weight = (pw - 1) * y + 1
    gx = gy = gw = gpw = None
    if ctx.needs[0]:  # d/dx: (1 - y) - log_weight * sigmoid(-x)
        gx = g * w * ((1 - y) - log_weight * (-x).sigmoid())
    if ctx.needs[1]:
        gy = g * w * ((pw - 1) * _softplus_neg_t(x) - x)
    if _needs(ctx, 2):
        gw = g * ((1 - y) * x + log_weight * _softplus_neg_t(x))
    if _needs(ctx, 3):
        gpw = g * w * y * _softplus_neg_t(x)
    return to_edges(ctx, (gx, gy, gw, gpw))


# -- smooth L1 and Huber ----------------------------------------------------------------------
def _piecewise(xp, d, width, huber):
    """Quadratic inside |d| < width, linear outside (smooth L1 divides by width, Huber not)."""
    ad = xp.abs(d)
    if width == 0:
        return ad
    quad = 0.5 * d * d
    if huber:
        return xp.where(ad < width, quad, width * (ad - 0.5 * width))
    return xp.where(ad < width, quad / width, ad - 0.5 * width)


def _smooth_meta(x, y, *, reduction="mean", beta=1.0):
    if beta < 0:
        raise InvalidArgumentError("smooth_l1_loss does not support negative values for beta.")
    return _loss_meta(x, y, reduction=reduction)


def _smooth(xp, x, y, *, reduction="mean", beta=1.0):
    return _reduce(_piecewise(xp, x - y, beta, huber=False), reduction)


def _huber_meta(x, y, *, reduction="mean", delta=1.0):
    if delta <= 0:
        raise InvalidArgumentError("huber_loss does not support non-positive values for delta.")
    return _loss_meta(x, y, reduction=reduction)


def _huber(xp, x, y, *, reduction="mean", delta=1.0):
    return _reduce(_piecewise(xp, x - y, delta, huber=True), reduction)


def _piecewise_grad(ctx, g, width, huber):
    x, y = ctx.saved
    d = x - y
    g = _scale(ctx, g, x)
    sign = d._op("sign", d)
    if width == 0:
        gd = g * sign
    else:
        inside = d / width if not huber else d
        outside = sign * width if huber else sign
        gd = g * d._op("where", d.abs() < width, inside, outside)
    return (gd if ctx.needs[0] else None, -gd if ctx.needs[1] else None)


smooth_l1 = defop("smooth_l1_loss", infer=_smooth_meta, grad_name="SmoothL1LossBackward0",
                  save=(0, 1))(_smooth)
smooth_l1.def_backward(lambda ctx, g: _piecewise_grad(ctx, g, ctx.attrs.get("beta", 1.0),
                                                      False))
huber = defop("huber_loss", infer=_huber_meta, grad_name="HuberLossBackward0",
              save=(0, 1))(_huber)
huber.def_backward(lambda ctx, g: _piecewise_grad(ctx, g, ctx.attrs.get("delta", 1.0), True))
