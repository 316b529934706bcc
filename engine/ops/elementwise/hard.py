"""Activations torch computes as one kernel each, with its grad_fn names: log_sigmoid and
mish, and the piecewise-linear hardtanh (and relu6), hardsigmoid and hardswish with torch's
gradients at the kinks
(hardtanh's is 0 at either bound, where clamp's passes the gradient; hardswish's is 0 at -3
and 1 at 3; hardsigmoid's is 1/6 strictly inside (-3, 3), that constant in float32 as torch's
kernel has it). The backwards are written with `where`, so hardtanh's and hardswish's
differentiate again as torch's do.

    >>> from gradserve import engine
    >>> x = engine.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    >>> y = x._op("hardtanh", x, min_val=-1.0, max_val=1.0)
    >>> y.sum().backward(); x.grad, type(y.grad_fn).__name__
    (tensor([0., 1., 0.]), 'HardtanhBackward0')
"""

from __future__ import annotations

import numpy as np

from ...core.dtype import no_kernel
from ...core.layout import iterated, preserved
from ...core.registry import Meta, defop
from ...surface.tensor_api import where


def _iterated(x):
    return iterated(x.shape, (x,))


# hardtanh writes into empty_like(x): x's layout (`preserved`); log_sigmoid into a
# contiguous buffer; the rest are torch's iterator
_LAYOUTS = {"hardtanh": lambda x: preserved(x.shape, x._strides),
            "log_sigmoid_forward": lambda x: None}


def _meta(name: str):
    def infer(x, **_) -> Meta:
        if not x.dtype.is_floating_point:
            raise no_kernel(name, x.dtype)
        return Meta(x.shape, x.dtype, _LAYOUTS.get(name, _iterated)(x))

    return infer


hardtanh = defop("hardtanh", infer=_meta("hardtanh"), grad_name="HardtanhBackward0", save=(0,),
                 attrs=("min_val", "max_val"))(
    lambda xp, x, min_val, max_val: xp.clip(x, min_val, max_val).astype(x.dtype, copy=False))


@hardtanh.def_backward
def _(ctx, g):
    (x,) = ctx.saved
    lo, hi = ctx.attrs["min_val"], ctx.attrs["max_val"]
    return (where((x <= lo) | (x >= hi), 0.0, g),)


hardsigmoid = defop("hardsigmoid", infer=_meta("hardsigmoid"),
                    grad_name="HardsigmoidBackward0", save=(0,))(
    lambda xp, x: (xp.clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False))

_SIXTH = float(np.float32(1 / 6))  # torch's kernel multiplies by a float 1/6, even for double


@hardsigmoid.def_backward
def _(ctx, g):
    (x,) = ctx.saved
    return (where((x > -3.0) & (x < 3.0), g * _SIXTH, 0.0),)


hardswish = defop("hardswish", infer=_meta("hardswish"), grad_name="HardswishBackward0",
                  save=(0,))(
    lambda xp, x: (x * xp.clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False))


@hardswish.def_backward
def _(ctx, g):
    (x,) = ctx.saved
    return (where(x <= -3.0, 0.0, where(x < 3.0, g * (x / 3.0 + 0.5), g)),)


# -- log_sigmoid and mish: one kernel each in torch, composed of several ops before ----------
log_sigmoid = defop("log_sigmoid", infer=_meta("log_sigmoid_forward"),
                    grad_name="LogSigmoidBackward0", save=(0,))(
    lambda xp, x: (xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))).astype(x.dtype, copy=False))


@log_sigmoid.def_backward
def _(ctx, g):
    (x,) = ctx.saved  # torch's form: sigmoid(-x) from z = exp(-|x|), stable for either sign
    z = (-x.abs()).exp()
    s = z / (z + 1.0)
    return (g * where(x < 0, 1.0 - s, s),)


mish = defop("mish", infer=_meta("mish"), grad_name="MishBackward0", save=(0,))(
    lambda xp, x: (x * xp.tanh(xp.log1p(xp.exp(x)))).astype(x.dtype, copy=False))


@mish.def_backward
def _(ctx, g):
    (x,) = ctx.saved  # torch's: tanh(softplus x) + x sigmoid(x) (1 - tanh(softplus x)^2)
    t = x.exp().log1p().tanh()
    return (g * (t + x * x.sigmoid() * (1.0 - t * t)),)
