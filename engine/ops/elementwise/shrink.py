"""Activations torch computes in one kernel each, with torch's grad_fn names: the scaled elu
(selu: EluBackward0), celu (CeluBackward0), softshrink, hardshrink, threshold, glu; and
diag_embed (DiagEmbedBackward0), also one kernel.

Backwards are written with tensor ops, so second derivatives work.

    >>> from gradserve import engine
    >>> x = engine.tensor([-1.0, 0.2, 2.0], requires_grad=True)
    >>> x._op("softshrink", x, lambd=0.5)
    tensor([-0.5000,  0.0000,  1.5000], grad_fn=<SoftshrinkBackward0>)
"""

from __future__ import annotations

import numpy as np

from ...core.dtype import TORCH_SCALAR_NAMES, no_kernel
from ...core.errors import InvalidArgumentError, KernelNotImplementedError
from ...core.layout import iterated
from ...core.registry import Meta, defop
from ...core.shape import normalize_dim
from ...surface.tensor_api import cat, where


def _float_only(kernel: str):
    def infer(a, **_) -> Meta:
        if not a.dtype.is_floating_point:
            if kernel == "softshrink":  # torch's check runs before its kernel
                raise KernelNotImplementedError(
                    f'"softshrink_check" not implemented for '
                    f"'{TORCH_SCALAR_NAMES[a.dtype.name]}'")
            raise no_kernel(kernel, a.dtype)
        return Meta(a.shape, a.dtype, iterated(a.shape, (a,)))

    return infer


def _elu(xp, a, alpha=1.0, scale=1.0, input_scale=1.0):
    neg = alpha * xp.expm1(xp.minimum(a, 0) * input_scale)
    return (scale * xp.where(a > 0, a, neg)).astype(a.dtype)


def _elu_backward(ctx, g):
    (a,) = ctx.saved
    alpha, scale = ctx.attrs.get("alpha", 1.0), ctx.attrs.get("scale", 1.0)
    s = ctx.attrs.get("input_scale", 1.0)
    return (g * where(a > 0, scale, (a.clamp(max=0) * s).exp() * (alpha * s * scale)),)


scaled_elu = defop("scaled_elu", infer=_float_only("elu"), grad_name="EluBackward0",
                   save=(0,))(_elu)
scaled_elu.def_backward(_elu_backward)
celu = defop("celu", infer=_float_only("elu"), grad_name="CeluBackward0", save=(0,))(
    lambda xp, a, alpha=1.0: _elu(xp, a, alpha, 1.0, 1.0 / alpha))


@celu.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    alpha = ctx.attrs.get("alpha", 1.0)
    return (g * where(a > 0, 1.0, (a.clamp(max=0) / alpha).exp()),)


def _lambd_meta(kernel: str):
    def infer(a, lambd=0.5) -> Meta:
        meta = _float_only(kernel)(a)
        if lambd < 0:
            top = float(np.finfo(a.dtype.name).max)
            raise InvalidArgumentError(
                f"lambda must be in range [0, {top:g}] for input dtype "
                f"{TORCH_SCALAR_NAMES[a.dtype.name]}, but found {lambd:g}")
        return meta

    return infer


softshrink = defop("softshrink", infer=_lambd_meta("softshrink"),
                   grad_name="SoftshrinkBackward0", save=(0,))(
    lambda xp, a, lambd=0.5: xp.where(a > lambd, a - lambd,
                                      xp.where(a < -lambd, a + lambd, 0)).astype(a.dtype))
softshrink.def_backward(
    lambda ctx, g: (where(ctx.saved[0].abs() > ctx.attrs.get("lambd", 0.5), g, 0.0),))

hardshrink = defop("hardshrink", infer=_float_only("hardshrink"),
                   grad_name="HardshrinkBackward0", save=(0,))(
    lambda xp, a, lambd=0.5: xp.where(xp.abs(a) > lambd, a, 0).astype(a.dtype))
hardshrink.def_backward(
    lambda ctx, g: (where(ctx.saved[0].abs() > ctx.attrs.get("lambd", 0.5), g, 0.0),))


def _threshold_meta(a, threshold=0.0, value=0.0) -> Meta:
    return Meta(a.shape, a.dtype, iterated(a.shape, (a,)))


threshold = defop("threshold", infer=_threshold_meta, grad_name="ThresholdBackward0",
                  save=(0,))(
    lambda xp, a, threshold=0.0, value=0.0: xp.where(a > threshold, a, value).astype(a.dtype))
threshold.def_backward(lambda ctx, g: (g._op("threshold_backward", g, ctx.saved[0],
                                              threshold=ctx.attrs.get("threshold", 0.0)),))


def _glu_meta(a, dim=-1) -> Meta:
    if len(a.shape) == 0:
        raise InvalidArgumentError("glu does not support scalars because halving size must "
                                   "be even")
    d = normalize_dim(dim, len(a.shape))
    n = a.shape[d]
    if n % 2:
        raise InvalidArgumentError(
            f"Halving dimension must be even, but dimension {d} is size {n}")
    if not a.dtype.is_floating_point:
        raise no_kernel("glu", a.dtype)
    return Meta(a.shape[:d] + (n // 2,) + a.shape[d + 1:], a.dtype)


def _glu(xp, a, dim=-1):
    d = dim % a.ndim
    first, second = xp.split(a, 2, axis=d)
    return (first / (1 + xp.exp(-second))).astype(a.dtype)


glu = defop("glu", infer=_glu_meta, grad_name="GluBackward0", save=(0,))(_glu)


@glu.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    d = ctx.attrs.get("dim", -1) % a.ndim
    half = a.shape[d] // 2
    first, second = a.narrow(d, 0, half), a.narrow(d, half, half)
    sig = second.sigmoid()
    ga = g * sig
    return (cat([ga, ga * first * (1 - sig)], d),)



# -- diag_embed: not an activation, but like them one torch kernel --------------------------
def _embed_dims(ndim: int, dim1: int, dim2: int) -> tuple[int, int]:
    d1, d2 = normalize_dim(dim1, ndim + 1), normalize_dim(dim2, ndim + 1)
    if d1 == d2:
        raise InvalidArgumentError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return d1, d2


def _diag_embed_meta(a, offset=0, dim1=-2, dim2=-1) -> Meta:
    if len(a.shape) == 0:
        raise InvalidArgumentError("diag_embed(): input must be at least 1-dimensional")
    d1, d2 = _embed_dims(len(a.shape), dim1, dim2)
    m = a.shape[-1] + abs(offset)
    shape = list(a.shape[:-1])
    for d in sorted((d1, d2)):
        shape.insert(d, m)
    return Meta(tuple(shape), a.dtype)


def _diag_embed(xp, a, offset=0, dim1=-2, dim2=-1):
    d1, d2 = _embed_dims(a.ndim, dim1, dim2)
    n = a.shape[-1]
    m = n + abs(offset)
    out = xp.zeros(a.shape[:-1] + (m, m), a.dtype)
    idx = xp.arange(n)
    out[..., idx + max(-offset, 0), idx + max(offset, 0)] = a
    return xp.moveaxis(out, (-2, -1), (d1, d2))


diag_embed = defop("diag_embed", infer=_diag_embed_meta, grad_name="DiagEmbedBackward0")(
    _diag_embed)
diag_embed.def_backward(lambda ctx, g: (g.diagonal(ctx.attrs.get("offset", 0),
                                                   ctx.attrs.get("dim1", -2),
                                                   ctx.attrs.get("dim2", -1)),))
