"""More elementwise functions of one tensor: the float functions (rsqrt, log1p, ... atan),
the rounding family (floor, ceil, round, trunc, frac, sign), each with torch's grad_fn name.

Rounding has a zero derivative almost everywhere: its backward gives zeros (torch's), not
`g * 0`, which would turn an infinite gradient into nan.

    >>> from gradserve import engine
    >>> x = engine.tensor([0.25, 4.0], requires_grad=True)
    >>> y = x.rsqrt()
    >>> y, y.grad_fn.name()
    (tensor([2.0000, 0.5000], grad_fn=<RsqrtBackward0>), 'RsqrtBackward0')
"""

from __future__ import annotations

import math

from ...core.dtype import bool_, no_kernel
from ...core.layout import iterated
from ...core.registry import Meta, defop
from ...surface.tensor_api import where
from ..edges import zeros_like
from .arithmetic import float_meta, same_meta


def _float_op(name, grad_name, fn, **kw):
    return defop(name, infer=float_meta, grad_name=grad_name, **kw)(fn)


rsqrt = _float_op("rsqrt", "RsqrtBackward0", lambda xp, a: 1 / xp.sqrt(a), save_output=True)


@rsqrt.def_backward
def _(ctx, g):
    out = ctx.output
    return (-0.5 * g * out * out * out,)


log1p = _float_op("log1p", "Log1PBackward0", lambda xp, a: xp.log1p(a), save=(0,))
log1p.def_backward(lambda ctx, g: (g / (ctx.saved[0] + 1),))

expm1 = _float_op("expm1", "Expm1Backward0", lambda xp, a: xp.expm1(a), save_output=True)
expm1.def_backward(lambda ctx, g: (g * (ctx.output + 1),))

log2 = _float_op("log2", "Log2Backward0", lambda xp, a: xp.log2(a), save=(0,))
log2.def_backward(lambda ctx, g: (g / (ctx.saved[0] * math.log(2.0)),))

log10 = _float_op("log10", "Log10Backward0", lambda xp, a: xp.log10(a), save=(0,))
log10.def_backward(lambda ctx, g: (g / (ctx.saved[0] * math.log(10.0)),))

sinh = _float_op("sinh", "SinhBackward0", lambda xp, a: xp.sinh(a), save=(0,))
sinh.def_backward(lambda ctx, g: (g * ctx.saved[0].cosh(),))

cosh = _float_op("cosh", "CoshBackward0", lambda xp, a: xp.cosh(a), save=(0,))
cosh.def_backward(lambda ctx, g: (g * ctx.saved[0].sinh(),))

asin = _float_op("asin", "AsinBackward0", lambda xp, a: xp.arcsin(a), save=(0,))
asin.def_backward(lambda ctx, g: (g * (1 - ctx.saved[0] * ctx.saved[0]).rsqrt(),))

acos = _float_op("acos", "AcosBackward0", lambda xp, a: xp.arccos(a), save=(0,))
acos.def_backward(lambda ctx, g: (-g * (1 - ctx.saved[0] * ctx.saved[0]).rsqrt(),))

atan = _float_op("atan", "AtanBackward0", lambda xp, a: xp.arctan(a), save=(0,))
atan.def_backward(lambda ctx, g: (g / (1 + ctx.saved[0] * ctx.saved[0]),))


# -- rounding: integers pass through unchanged -----------------------------------------------
def _rounding(name, grad_name, fn):
    def forward(xp, a, **attrs):
        return fn(xp, a, **attrs) if a.dtype.kind == "f" else a.copy()

    op = defop(name, infer=same_meta, grad_name=grad_name)(forward)
    op.def_backward(lambda ctx, g: (zeros_like(g),))
    return op


_rounding("floor", "FloorBackward0", lambda xp, a: xp.floor(a))
_rounding("ceil", "CeilBackward0", lambda xp, a: xp.ceil(a))
_rounding("trunc", "TruncBackward0", lambda xp, a: xp.trunc(a))


def _round(xp, a, decimals=0):
    if a.dtype.kind != "f":
        return a.copy()
    if not decimals:
        return xp.round(a)  # half to even, as torch
    scale = 10.0 ** decimals  # torch scales, rounds, unscales (so does numpy)
    return xp.round(a * scale) / scale


defop("round", infer=same_meta,
      grad_name=lambda a, decimals=0: "RoundBackward1" if decimals else "RoundBackward0")(
    _round).def_backward(lambda ctx, g: (zeros_like(g),))


def _sign(xp, a):
    if a.dtype.kind == "b":
        return a.copy()
    out = xp.sign(a, out=xp.empty_like(a))  # an array, even for a 0-d a
    if a.dtype.kind == "f":  # torch's sign is (0 < a) - (a < 0): 0 for NaN
        xp.copyto(out, 0, where=xp.isnan(out))
    return out


defop("sign", infer=same_meta, grad_name="SignBackward0")(_sign).def_backward(
    lambda ctx, g: (zeros_like(g),))


def _frac_meta(a):
    if not a.dtype.is_floating_point:
        raise no_kernel("frac", a.dtype)
    return same_meta(a)


defop("frac", infer=_frac_meta, grad_name="FracBackward0")(
    lambda xp, a: a - xp.trunc(a)).def_backward(lambda ctx, g: (g,))


def _bool_meta(a):
    return Meta(a.shape, bool_, iterated(a.shape, (a,)))


# -- tests of values (never differentiable) --------------------------------------------------
def _test(fn, integers: bool):
    """A test of float values; integers and bools give `integers` everywhere."""
    def forward(xp, a):
        if a.dtype.kind == "f":
            return fn(xp, a)
        return xp.full(a.shape, integers, dtype=bool)

    return forward


defop("isnan", infer=_bool_meta)(_test(lambda xp, a: xp.isnan(a), False))
defop("isinf", infer=_bool_meta)(_test(lambda xp, a: xp.isinf(a), False))
defop("isfinite", infer=_bool_meta)(_test(lambda xp, a: xp.isfinite(a), True))


# -- activations torch keeps in nn.functional (gelu, silu, leaky_relu: see activations.py) --
def _softplus(xp, a, beta=1.0, threshold=20.0):
    z = a * beta
    # log1p(exp(z)) without overflow; linear above the threshold, as torch
    soft = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta
    return xp.where(z > threshold, a, soft)


softplus = defop("softplus", infer=float_meta, grad_name="SoftplusBackward0", save=(0,))(
    _softplus)


@softplus.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    beta, threshold = ctx.attrs.get("beta", 1.0), ctx.attrs.get("threshold", 20.0)
    z = a * beta
    return (g * where(z > threshold, 1.0, z.sigmoid()),)


def _elu(xp, a, alpha=1.0):
    return xp.where(a > 0, a, alpha * xp.expm1(xp.minimum(a, 0)))


elu = defop("elu", infer=float_meta, grad_name="EluBackward0", save=(0,))(_elu)


@elu.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    alpha = ctx.attrs.get("alpha", 1.0)
    return (g * where(a > 0, 1.0, alpha * a.clamp(max=0).exp()),)
