"""Activation ops beyond relu/sigmoid/tanh: erf, gelu (exact and tanh), silu, leaky_relu.

Each is one fused forward; backward is written in engine ops (erf's derivative is
2/sqrt(pi) exp(-x^2), gelu's uses erf again), so higher derivatives work.

    >>> from gradserve import engine
    >>> x = engine.tensor([-1., 0., 2.])
    >>> x._op("gelu", x)
    tensor([-0.1587,  0.0000,  1.9545])
"""

from __future__ import annotations

import math

from ...core.errors import InvalidArgumentError
from ...core.registry import defop
from .arithmetic import float_meta
from .special import erf as _erf

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_K = math.sqrt(2.0 / math.pi)
_TANH_C = 0.044715


def _float_only(name):
    def infer(a, **_):
        if not a.dtype.is_floating_point:
            raise InvalidArgumentError(f'"{name}" not implemented for '
                                       f"'{a.dtype.name.capitalize()}'")
        return float_meta(a)

    return infer


erf = defop("erf", infer=float_meta, grad_name="ErfBackward0", save=(0,))(_erf)


@erf.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (g * (a * a).neg().exp() * (2.0 / math.sqrt(math.pi)),)


def _gelu_meta(a, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise InvalidArgumentError(f"approximate argument must be either none or tanh, got "
                                   f"{approximate!r}")
    return _float_only("GeluKernelImpl")(a)


def _gelu(xp, a, approximate="none"):
    if approximate == "tanh":
        inner = _TANH_K * (a + _TANH_C * a * a * a)
        return 0.5 * a * (1.0 + xp.tanh(inner))
    return 0.5 * a * (1.0 + _erf(xp, a / _SQRT2))


gelu = defop("gelu", infer=_gelu_meta, grad_name="GeluBackward0", save=(0,))(_gelu)


@gelu.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    if ctx.attrs.get("approximate", "none") == "tanh":
        # d/da 0.5 a (1 + tanh u), u = k (a + c a^3)
        t = ((a + a * a * a * _TANH_C) * _TANH_K).tanh()
        du = (a * a * (3 * _TANH_C) + 1.0) * _TANH_K
        return (g * ((t + 1.0) * 0.5 + a * 0.5 * (1.0 - t * t) * du),)
    cdf = (a._op("erf", a / _SQRT2) + 1.0) * 0.5
    pdf = (a * a * -0.5).exp() * _INV_SQRT2PI
    return (g * (cdf + a * pdf),)


def _silu(xp, a):
    # a * sigmoid(a), written so that neither branch overflows
    e = xp.exp(-xp.abs(a))
    return a * xp.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype)


silu = defop("silu", infer=_float_only("silu"), grad_name="SiluBackward0", save=(0,))(_silu)


@silu.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    s = a.sigmoid()
    return (g * s * (a * (1.0 - s) + 1.0),)


def _leaky_meta(a, negative_slope=0.01):
    return _float_only("leaky_relu")(a)


def _leaky(xp, a, negative_slope=0.01):
    return xp.where(a > 0, a, a * negative_slope)


leaky_relu = defop("leaky_relu", infer=_leaky_meta, grad_name="LeakyReluBackward0",
                   save=(0,))(_leaky)


@leaky_relu.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    slope = ctx.attrs.get("negative_slope", 0.01)
    return (a._op("where", a > 0, g, g * slope),)
