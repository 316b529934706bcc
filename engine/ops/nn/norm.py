"""Normalisation ops: batch_norm (training statistics; `batch_norm_eval` with the running
ones), layer_norm, group_norm.

Each is fused: one op normalises (biased variance, as torch) and applies the optional affine
weight and bias. Inputs are `(x,)` or `(x, weight, bias)`. Backward is written in engine
ops from x (mean and inverse deviation are recomputed), so it has a backward of its own:

    xhat = (x - mean) * invstd
    dx   = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))    over the stats' dims
    dw   = sum(g * xhat),  db = sum(g),  dxhat = g * w

batch_norm also returns the batch mean and the unbiased batch variance (no gradient), which
`gradserve.nn.functional.batch_norm` folds into the running statistics.

    >>> from gradserve import engine
    >>> x = engine.tensor([[1., 3.], [2., 6.]])
    >>> x._op("layer_norm", x, normalized_ndim=1, eps=0.0)
    tensor([[-1.,  1.],
            [-1.,  1.]])
"""

from __future__ import annotations

import math

from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ..edges import edges_of


def _check_affine(name, x, params, shape):
    if len(params) not in (0, 2):
        raise InvalidArgumentError(f"{name}: pass both weight and bias, or neither")
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError(f"{name}: expected a floating point input")
    for p in params:
        if not hasattr(p, "shape"):
            continue  # a number: the neutral scale or shift of a call without affine
        if tuple(p.shape) != tuple(shape):
            raise InvalidArgumentError(f"{name}: expected weight and bias of shape "
                                       f"{list(shape)}, got {list(p.shape)}")
        if p.dtype is not x.dtype:
            raise InvalidArgumentError(f"{name}: weight and bias must have the input's dtype")


def _normalize(xp, x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    return centered / xp.sqrt(var + eps), mean, var


def _affine(y, params, shape):
    """y * weight + bias; the client sends a call without affine as the numbers (1, 0), so
    its node keeps torch's None edges for them, and those are no work."""
    if params:
        w, b = params
        if hasattr(w, "shape"):
            y = y * w.reshape(shape)
        elif w != 1:
            y = y * w
        if hasattr(b, "shape"):
            y = y + b.reshape(shape)
        elif b != 0:
            y = y + b
    return y


def _backward(ctx, g, axes, param_shape, group_shape=None):
    """Gradients of (x, [w, b]) for normalisation over `axes` of x (viewed as group_shape)
    and an affine broadcast as param_shape; written in engine ops."""
    saved = ctx.saved
    x, params = saved[0], saved[1:]
    eps = ctx.attrs["eps"]
    shape = tuple(x.shape)
    xv = x.reshape(group_shape) if group_shape else x
    mean = xv.mean(axes, keepdim=True)
    centered = xv - mean
    invstd = ((centered * centered).mean(axes, keepdim=True) + eps) ** -0.5
    xhat = centered * invstd
    gw = gb = None
    reduce_dims = tuple(i for i in range(len(shape)) if param_shape[i] == 1)
    if params:
        w = params[0]
        if ctx.needs[1]:
            gw = (g * xhat.reshape(shape)).sum(reduce_dims).reshape(w.shape)
        if ctx.needs[2]:
            gb = g.sum(reduce_dims).reshape(params[1].shape)
        if hasattr(w, "shape"):
            g = g * w.reshape(param_shape)
        elif w != 1:
            g = g * w
    gx = None
    if ctx.needs[0]:
        gv = g.reshape(group_shape) if group_shape else g
        inner = gv - gv.mean(axes, keepdim=True) - xhat * (gv * xhat).mean(axes, keepdim=True)
        gx = (invstd * inner).reshape(shape)
    return (gx, gw, gb)[: len(ctx.needs)]


# -- batch_norm -------------------------------------------------------------------------------
def _bn_axes(ndim):
    return (0,) + tuple(range(2, ndim))


def _bn_param_shape(shape):
    return (1, shape[1]) + (1,) * (len(shape) - 2)


def _bn_meta(x, *params, eps):
    if len(x.shape) < 2:
        raise InvalidArgumentError(f"batch_norm: expected a 2-D or higher input, got "
                                   f"{len(x.shape)}-D")
    _check_affine("batch_norm", x, params, (x.shape[1],))
    count = math.prod(x.shape) // max(x.shape[1], 1)
    if count <= 1:
        raise InvalidArgumentError(f"Expected more than 1 value per channel when training, got "
                                   f"input size {list(x.shape)}")
    stat = Meta((x.shape[1],), x.dtype)
    return Meta(tuple(x.shape), x.dtype), stat, stat


def _bn(xp, x, *params, eps):
    axes = _bn_axes(x.ndim)
    y, mean, var = _normalize(xp, x, axes, eps)
    count = x.size // x.shape[1]
    unbiased = var.reshape(-1) * (count / (count - 1))
    return _affine(y, params, _bn_param_shape(x.shape)), mean.reshape(-1), unbiased


# one node for both modes, with torch's edges (input, weight, bias): none for the running
# statistics the evaluation op also takes
_BN = edges_of("NativeBatchNormBackward0", (0, 1, 2))
batch_norm = defop("batch_norm", infer=_bn_meta, grad_name=_BN, save=slice(0, None))(_bn)


@batch_norm.def_backward
def _(ctx, g):
    shape = ctx.in_shapes[0]
    return _backward(ctx, g, _bn_axes(len(shape)), _bn_param_shape(shape))


def _bn_eval_meta(x, weight, bias, running_mean, running_var, *, eps):
    if len(x.shape) < 2:
        raise InvalidArgumentError(f"batch_norm: expected a 2-D or higher input, got "
                                   f"{len(x.shape)}-D")
    _check_affine("batch_norm", x, (weight, bias), (x.shape[1],))
    for stat in (running_mean, running_var):
        if tuple(stat.shape) != (x.shape[1],):
            raise InvalidArgumentError(
                f"running_mean should contain {x.shape[1]} elements not {math.prod(stat.shape)}")
    return Meta(tuple(x.shape), x.dtype)


def _bn_eval_scale(xp, w, rv, eps, shape):
    """torch's CPU kernel: alpha = weight / sqrt(var + eps) per channel."""
    return ((1 / xp.sqrt(rv + eps)) * w).reshape(shape)


def _bn_eval(xp, x, w, b, rm, rv, *, eps):
    shape = _bn_param_shape(x.shape)
    rm, rv = rm.astype(x.dtype, copy=False), rv.astype(x.dtype, copy=False)
    alpha = _bn_eval_scale(xp, w, rv, eps, shape)
    beta = (b.reshape(shape) if hasattr(b, "shape") else b) - rm.reshape(shape) * alpha
    return x * alpha + beta


batch_norm_eval = defop("batch_norm_eval", infer=_bn_eval_meta, grad_name=_BN,
                        attrs=("eps",), save=(0, 1, 3, 4))(_bn_eval)


@batch_norm_eval.def_backward
def _(ctx, g):
    """With the running statistics (constants): dx = g * w * invstd, dw = sum(g * xhat),
    db = sum(g), over every dim but the channels'."""
    x, w, rm, rv = ctx.saved
    eps = ctx.attrs["eps"]
    shape = _bn_param_shape(tuple(x.shape))
    dims = _bn_axes(len(x.shape))
    invstd = ((rv.to(x.dtype) + eps) ** -0.5).reshape(shape)
    gx = gw = gb = None
    if ctx.needs[0]:
        gx = g * (invstd * w.reshape(shape) if hasattr(w, "shape") else invstd * w)
    if len(ctx.needs) > 1 and ctx.needs[1]:
        gw = (g * ((x - rm.to(x.dtype).reshape(shape)) * invstd)).sum(dims)
    if len(ctx.needs) > 2 and ctx.needs[2]:
        gb = g.sum(dims)
    return gx, gw, gb


# -- layer_norm -------------------------------------------------------------------------------
def _ln_meta(x, *params, normalized_ndim, eps):
    if not 0 < normalized_ndim <= len(x.shape):
        raise InvalidArgumentError(f"layer_norm: normalized_shape has {normalized_ndim} dims, "
                                   f"the input only {len(x.shape)}")
    _check_affine("layer_norm", x, params, tuple(x.shape[len(x.shape) - normalized_ndim:]))
    return Meta(tuple(x.shape), x.dtype)


def _ln_axes(ndim, k):
    return tuple(range(ndim - k, ndim))


def _ln(xp, x, *params, normalized_ndim, eps):
    y, _, _ = _normalize(xp, x, _ln_axes(x.ndim, normalized_ndim), eps)
    return _affine(y, params, x.shape[x.ndim - normalized_ndim:])


layer_norm = defop("layer_norm", infer=_ln_meta, grad_name="NativeLayerNormBackward0",
                   save=slice(0, None))(_ln)


@layer_norm.def_backward
def _(ctx, g):
    shape = ctx.in_shapes[0]
    k = ctx.attrs["normalized_ndim"]
    param_shape = (1,) * (len(shape) - k) + tuple(shape[len(shape) - k:])
    return _backward(ctx, g, _ln_axes(len(shape), k), param_shape)


# -- group_norm -------------------------------------------------------------------------------
def _gn_meta(x, *params, num_groups, eps):
    if len(x.shape) < 2:
        raise InvalidArgumentError("group_norm: expected an input of shape (N, C, *)")
    if num_groups < 1 or x.shape[1] % num_groups:
        raise InvalidArgumentError(f"Expected number of channels in input to be divisible by "
                                   f"num_groups, but got input of shape {list(x.shape)} and "
                                   f"num_groups={num_groups}")
    _check_affine("group_norm", x, params, (x.shape[1],))
    return Meta(tuple(x.shape), x.dtype)


def _gn(xp, x, *params, num_groups, eps):
    grouped = x.reshape(x.shape[0], num_groups, -1)
    y, _, _ = _normalize(xp, grouped, (2,), eps)
    return _affine(y.reshape(x.shape), params, _bn_param_shape(x.shape))


group_norm = defop("group_norm", infer=_gn_meta, grad_name="NativeGroupNormBackward0",
                   save=slice(0, None))(_gn)


@group_norm.def_backward
def _(ctx, g):
    shape = tuple(ctx.in_shapes[0])
    groups = ctx.attrs["num_groups"]
    return _backward(ctx, g, (2,), _bn_param_shape(shape), (shape[0], groups, -1))
