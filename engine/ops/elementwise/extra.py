"""Elementwise functions torch computes in one kernel each, so they get one node with torch's
grad_fn name: exp2, logit, xlogy, hypot, sinc, nan_to_num, nansum, dist, addcmul, addcdiv, and
clamp with tensor bounds (ClampBackward0; number bounds are `clamp`, ClampBackward1).

    >>> from gradserve import engine
    >>> x = engine.tensor([0.25, 0.5], requires_grad=True)
    >>> y = x.logit()
    >>> y.grad_fn.name()
    'LogitBackward0'
"""

from __future__ import annotations

import math

from ...core.dtype import TORCH_SCALAR_NAMES, float_result, no_kernel, result_type
from ...core.errors import InvalidArgumentError
from ...core.layout import iterated, preserved
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from ...surface.tensor_api import where
from ..edges import edges_of, to_edges
from ..reductions.reduce import _axis, _expand_back, _reduce_meta, _sum_dtype
from .arithmetic import _shape_dtype, binary_float_meta, float_meta

_LN2 = math.log(2.0)

exp2 = defop("exp2", infer=float_meta, grad_name="Exp2Backward0", save_output=True)(
    lambda xp, a: xp.exp2(a))
exp2.def_backward(lambda ctx, g: (g * ctx.output * _LN2,))


def _logit(xp, a, eps=None):
    if eps is not None:
        a = xp.clip(a, eps, 1 - eps)
    return xp.log(a / (1 - a))


logit = defop("logit", infer=float_meta, grad_name="LogitBackward0", save=(0,))(_logit)


@logit.def_backward
def _(ctx, g):
    (x,) = ctx.saved
    eps = ctx.attrs.get("eps")
    d = g / (x * (1 - x))
    if eps is None:
        return (d,)
    return (where((x < eps) | (x > 1 - eps), d * 0, d),)  # torch: zero outside [eps, 1-eps]


def _xlogy(xp, a, b):
    out = a * xp.log(b)
    return xp.where((a == 0) & ~xp.isnan(b), xp.zeros((), out.dtype), out).astype(out.dtype)


# torch's overloads: a number on the right is XlogyBackward2, on the left XlogyBackward1
_XLOGY_NUMBER = {(True, False): edges_of("XlogyBackward2", (0,)),
                 (False, True): edges_of("XlogyBackward1", (1,))}
xlogy = defop("xlogy", infer=binary_float_meta, save=(0, 1), grad_name=lambda a, b: (
    _XLOGY_NUMBER.get((hasattr(a, "shape"), hasattr(b, "shape")), "XlogyBackward0")))(_xlogy)


@xlogy.def_backward
def _(ctx, g):
    a, b = ctx.saved
    a_shaped, b_shaped = hasattr(a, "shape"), hasattr(b, "shape")
    da = db = None
    if ctx.needs[0] and a_shaped:
        da = g * (b.log() if b_shaped else math.log(b))  # torch's: log(other), at 0 too
    if ctx.needs[1] and b_shaped:
        db = g * a / b
    return to_edges(ctx, (da, db))


def _hypot_meta(a, b) -> Meta:
    m = binary_float_meta(a, b)
    for x in (a, b):
        dt = _shape_dtype(x)[1]
        if dt is not None and not dt.is_floating_point:
            raise no_kernel("hypot", result_type(a, b))
    return m


hypot = defop("hypot", infer=_hypot_meta, grad_name="HypotBackward0", save=(0, 1),
              save_output=True)(lambda xp, a, b: xp.hypot(a, b))


@hypot.def_backward
def _(ctx, g):
    a, b = ctx.saved
    out = ctx.output
    return (g * a / out if ctx.needs[0] else None, g * b / out if ctx.needs[1] else None)


def _nan_to_num(xp, a, nan=0.0, posinf=None, neginf=None):
    if a.dtype.kind != "f":
        return a.copy()
    return xp.nan_to_num(a, copy=True, nan=nan, posinf=posinf, neginf=neginf)


# torch's nan_to_num writes into empty_like(input): the input's layout, `preserved`
nan_to_num = defop("nan_to_num",
                   infer=lambda a, **_: Meta(a.shape, a.dtype, preserved(a.shape, a._strides)),
                   grad_name="NanToNumBackward0", save=(0,))(_nan_to_num)
nan_to_num.def_backward(lambda ctx, g: (g * ctx.saved[0].isfinite(),))


def _ternary_meta(name: str):
    def infer(a, b, c, value=1) -> Meta:
        shapes, dtypes = zip(*(_shape_dtype(x) for x in (a, b, c)), strict=True)
        for x in (a, b, c):
            if not hasattr(x, "shape"):
                raise TypeError(f"{name}(): argument must be Tensor, not {type(x).__name__}")
        dtype = result_type(a, b, c)
        if name == "addcdiv" and not (b.dtype.is_floating_point or c.dtype.is_floating_point):
            raise InvalidArgumentError(
                "Integer division with addcdiv is no longer supported, and in a future release "
                "addcdiv will perform a true division of tensor1 and tensor2. The historic "
                "addcdiv behavior can be implemented as (input + value * torch.trunc(tensor1 / "
                "tensor2)).to(input.dtype) for integer inputs and as (input + value * tensor1 / "
                "tensor2) for float inputs. The future addcdiv behavior is just the latter "
                "implementation: (input + value * tensor1 / tensor2), for all dtypes.")
        shape = broadcast_shapes(*shapes)
        dtype = dtype if name == "addcmul" else float_result(dtype)
        return Meta(shape, dtype, iterated(shape, (a, b, c), dtype))

    return infer


addcmul = defop("addcmul", infer=_ternary_meta("addcmul"), grad_name="AddcmulBackward0",
                grad_uses=((), (2,), (1,)))(lambda xp, a, b, c, value=1: a + value * (b * c))


@addcmul.def_backward
def _(ctx, g):
    b, c = ctx.saved
    v = ctx.attrs.get("value", 1)
    return (g, g * c * v if ctx.needs[1] else None, g * b * v if ctx.needs[2] else None)


addcdiv = defop("addcdiv", infer=_ternary_meta("addcdiv"), grad_name="AddcdivBackward0",
                grad_uses=((), (2,), (1, 2)))(lambda xp, a, b, c, value=1: a + value * (b / c))


@addcdiv.def_backward
def _(ctx, g):
    b, c = ctx.saved
    v = ctx.attrs.get("value", 1)
    return (g, g * v / c if ctx.needs[1] else None,
            -g * v * b / (c * c) if ctx.needs[2] else None)


def _clamp_t_meta(a, lo, hi, bounds="both", named=False) -> Meta:
    present = [x for x, k in ((lo, "min"), (hi, "max")) if bounds in (k, "both")]
    dtype = result_type(a, *present)
    shape = broadcast_shapes(a.shape, *(x.shape for x in present))
    return Meta(shape, dtype, iterated(shape, (a, *present), dtype))


def _clamp_t(xp, a, lo, hi, bounds="both", named=False):
    out = a
    if bounds in ("min", "both"):
        out = xp.maximum(out, lo)
    if bounds in ("max", "both"):
        out = xp.minimum(out, hi)
    return out


# torch's clamp_min(t) / clamp_max(t) (`named`) have a node of their own, with edges to self
# and their bound only
_NAMED = {"min": edges_of("ClampMinBackward1", (0, 1)),
          "max": edges_of("ClampMaxBackward1", (0, 2))}


def _clamp_t_name(a, lo, hi, bounds="both", named=False):
    return _NAMED[bounds] if named and bounds in _NAMED else "ClampBackward0"


# a missing bound travels as the input itself (a placeholder the forward ignores)
clamp_tensor = defop("clamp_tensor", infer=_clamp_t_meta, grad_name=_clamp_t_name,
                     save=(0, 1, 2))(_clamp_t)


@clamp_tensor.def_backward
def _(ctx, g):
    a, lo, hi = ctx.saved
    bounds = ctx.attrs.get("bounds", "both")
    zero = 0.0  # torch's zeros: never g * 0 (NaN where g is not finite)
    ge = a >= lo if bounds != "max" else None
    le = a <= hi if bounds != "min" else None
    keep = ge if le is None else le if ge is None else ge & le
    out = [where(keep, g, zero) if ctx.needs[0] else None, None, None]
    # with min > max the output is max: torch sends that gradient to max alone
    crossed = lo > hi if bounds == "both" else None
    if bounds != "max" and ctx.needs[1]:
        out[1] = where(ge if crossed is None else ge | crossed, zero, g)
    if bounds != "min" and ctx.needs[2]:
        out[2] = where(le if crossed is None else le & crossed.logical_not(), zero, g)
    return to_edges(ctx, tuple(out))


def _nansum(xp, a, dim=None, keepdim=False):
    return xp.nansum(a, axis=_axis(a.ndim, dim), keepdims=keepdim)


# floating inputs only: an integer nansum is a sum (the surface sends that)
nansum = defop("nansum", infer=_reduce_meta(_sum_dtype), grad_name="NansumBackward0",
               save=(0,))(_nansum)


@nansum.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    shape = ctx.in_shapes[0]
    g = _expand_back(g, shape, _axis(len(shape), ctx.attrs.get("dim")),
                     ctx.attrs.get("keepdim", False))
    return (g * a.isnan().logical_not(),)


def _sinc(xp, a):
    if a.dtype.kind != "f":
        a = a.astype(xp.float32)  # the engine casts to the meta's dtype
    zero = a == 0
    pa = xp.where(zero, xp.ones((), a.dtype), a * math.pi)  # no 0/0 warning at 0
    return xp.where(zero, xp.ones((), a.dtype), xp.sin(pa) / pa).astype(a.dtype)


sinc = defop("sinc", infer=float_meta, grad_name="SincBackward0", save=(0,))(_sinc)


@sinc.def_backward
def _(ctx, g):
    (x,) = ctx.saved
    zero = x == 0
    xs = where(zero, 1.0, x)  # 0 / 0 kept out of both this derivative and the next one
    px = xs * math.pi
    d = (px * px.cos() - px.sin()) / (px * xs)
    return (where(zero, 0.0, g * d),)


def _dist_meta(a, b, p=2.0) -> Meta:
    m = binary_float_meta(a, b)
    for x in (a, b):
        if not x.dtype.is_floating_point:
            raise InvalidArgumentError(
                "norm(): input dtype should be either floating point or complex. Got "
                f"{TORCH_SCALAR_NAMES[x.dtype.name]} instead.")
    return Meta((), m.dtype)


def _dist(xp, a, b, p=2.0):
    d = xp.abs(a - b).ravel()
    if p == math.inf:
        return d.max(initial=0.0)
    if p == -math.inf:
        return d.min() if d.size else xp.asarray(math.inf, d.dtype)
    if p == 0:
        return xp.asarray((d != 0).sum(), d.dtype)
    return (d ** p).sum() ** (1.0 / p)


dist = defop("dist", infer=_dist_meta, grad_name="DistBackward0", save=(0, 1),
             save_output=True)(_dist)


@dist.def_backward
def _(ctx, g):
    a, b = ctx.saved
    out = ctx.output
    p = ctx.attrs.get("p", 2.0)
    d = a - b
    if p == 0:
        grad = d * 0
    elif p in (math.inf, -math.inf):
        hit = d.abs() == out  # torch shares the gradient evenly among the extreme elements
        grad = d.sign() * hit / hit.sum()
    elif p == 1:
        grad = d.sign()
    else:
        safe = where(out == 0, 1.0, out)
        grad = d.sign() * d.abs() ** (p - 1) / safe ** (p - 1)
        grad = where(out == 0, grad * 0, grad)
    grad = g * grad
    return (grad if ctx.needs[0] else None, -grad if ctx.needs[1] else None)
