"""Pooling over the spatial dims of (N, C, *S) or unbatched (C, *S), as torch's kernels take
either: max, average and adaptive average.

Max pooling is two ops: `max_pool_indices` (no gradient) finds, per window, the flat index
into the input's spatial plane of its maximum (torch's `return_indices` convention), and
`max_pool(x, indices)` gathers those elements. Its gradient `max_pool_grad` scatters back
to the same indices, and the gradient of that is `max_pool` again, so the pair is closed
under differentiation. Average pooling and adaptive average pooling are linear; each has its
adjoint as a second op, and the adjoint of the adjoint is the op itself.

    >>> from gradserve import engine
    >>> x = engine.arange(16.).reshape(1, 1, 4, 4)
    >>> geo = dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1),
    ...            ceil_mode=False)
    >>> idx = x._op("max_pool_indices", x, **geo)
    >>> x._op("max_pool", x, idx)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ...core.dtype import int64
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ..edges import edges_of
from .conv import pad_zeros, windows


def pool_out_size(size, k, stride, pad, dilation, ceil_mode) -> int:
    """torch's pooling output length: floor or ceil, and with ceil no window may start in
    the right padding."""
    span = size + 2 * pad - dilation * (k - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_shape(shape, kernel, stride, padding, dilation, ceil_mode, name):
    nd = len(kernel)
    if len(shape) != nd + 2:
        raise InvalidArgumentError(f"{name}: expected a {nd + 2}-D input (N, C, ...), got "
                                   f"{len(shape)}-D")
    for k, p in zip(kernel, padding, strict=True):
        if p > k // 2:
            raise InvalidArgumentError(f"pad should be at most half of effective kernel size, "
                                       f"but got pad={p}, kernel_size={k}")
    out = []
    for size, k, s, p, d in zip(shape[2:], kernel, stride, padding, dilation, strict=True):
        o = pool_out_size(size, k, s, p, d, ceil_mode)
        if o < 1:
            raise InvalidArgumentError(
                f"Given input size: ({'x'.join(map(str, shape[1:]))}). Calculated output size: "
                f"({shape[1]}x{o}). Output size is too small"
            )
        out.append(o)
    return tuple(shape[:2]) + tuple(out)


def _lifted(shape, nd: int) -> tuple[tuple[int, ...], bool]:
    """(shape as (N, C, *S), whether a batch dim of 1 was put in front): an unbatched
    (C, *S) input is pooled as a batch of one, in one op (torch's node, no unsqueeze)."""
    shape = tuple(shape)
    return ((1, *shape), True) if len(shape) == nd + 1 else (shape, False)


def _spatial(x, spatial) -> int:
    return len(x.shape) - 2 if spatial is None else int(spatial)


def _window_pad(shape, kernel, stride, padding, dilation, out):
    """(lo, hi) per spatial dim so that every window lies inside the padded array."""
    return tuple((p, max(0, (o - 1) * s + d * (k - 1) + 1 - size - p))
                 for size, k, s, p, d, o in zip(shape[2:], kernel, stride, padding, dilation,
                                                out, strict=True))


# -- max pooling ------------------------------------------------------------------------------
def _indices_meta(x, *, kernel, stride, padding, dilation, ceil_mode):
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError('"max_pool2d" not implemented for '
                                   f"'{x.dtype.name.capitalize()}'")
    shape, lifted = _lifted(x.shape, len(kernel))
    out = _pool_shape(shape, kernel, stride, padding, dilation, ceil_mode, "max_pool")
    return Meta(out[1:] if lifted else out, int64)


def _max_indices(xp, x, *, kernel, stride, padding, dilation, ceil_mode):
    if x.ndim == len(kernel) + 1:
        return _max_indices(xp, x[None], kernel=kernel, stride=stride, padding=padding,
                            dilation=dilation, ceil_mode=ceil_mode)[0]
    shape = _pool_shape(x.shape, kernel, stride, padding, dilation, ceil_mode, "max_pool")
    out = shape[2:]
    nd = len(kernel)
    pads = _window_pad(x.shape, kernel, stride, padding, dilation, out)
    view = windows(xp, pad_zeros(xp, x, pads, fill=-xp.inf), kernel, stride, dilation, out)
    # (N, C, *out, K): the window's elements last, then its argmax
    order = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    flat = xp.ascontiguousarray(view.transpose(order)).reshape(shape + (-1,))
    local = xp.argmax(flat, axis=-1)
    # local index -> input coordinates, per dim, then flattened over the input's plane
    index = xp.zeros(shape, dtype=xp.int64)
    rest = local
    sizes = x.shape[2:]
    for i in reversed(range(nd)):
        k_i = rest % kernel[i]
        rest = rest // kernel[i]
        grid = xp.arange(out[i]).reshape((-1,) + (1,) * (nd - 1 - i)) * stride[i] - padding[i]
        coord = grid + k_i * dilation[i]
        index += coord * math.prod(sizes[i + 1:])
    return index


max_pool_indices = defop("max_pool_indices", infer=_indices_meta)(_max_indices)


# `spatial`: how many trailing dims are pooled (None: all but N and C; an unbatched call says)
def _gather_meta(x, indices, *, spatial=None):
    lead = len(x.shape) - _spatial(x, spatial)
    if indices.dtype is not int64 or tuple(indices.shape[:lead]) != tuple(x.shape[:lead]):
        raise InvalidArgumentError("max_pool: indices must be int64 shaped (N, C, *out)")
    return Meta(tuple(indices.shape), x.dtype)


def _gather(xp, x, indices, *, spatial=None):
    rows = math.prod(x.shape[:x.ndim - _spatial(x, spatial)])
    flat = x.reshape(rows, -1)
    return xp.take_along_axis(flat, indices.reshape(rows, -1), axis=1).reshape(indices.shape)


# the indices have no edge in torch's node
_MAX_POOL = {nd: edges_of(f"MaxPool{nd}DWithIndicesBackward0", (0,)) for nd in (1, 2, 3)}


def _pool_name(x, indices, *, spatial=None):
    return _MAX_POOL[_spatial(x, spatial)]


max_pool = defop("max_pool", infer=_gather_meta, grad_name=_pool_name, save=(1,))(_gather)


@max_pool.def_backward
def _(ctx, g):
    (indices,) = ctx.saved
    return (g._op("max_pool_grad", g, indices, input_shape=tuple(ctx.in_shapes[0]),
                  **_spatial_attr(ctx)),)


def _spatial_attr(ctx) -> dict:
    s = ctx.attrs.get("spatial")
    return {} if s is None else {"spatial": s}


def _scatter_meta(g, indices, *, input_shape, spatial=None):
    if tuple(g.shape) != tuple(indices.shape):
        raise InvalidArgumentError("max_pool_grad: grad and indices differ in shape")
    return Meta(tuple(input_shape), g.dtype)


def _scatter(xp, g, indices, *, input_shape, spatial=None):
    nd = len(input_shape) - 2 if spatial is None else int(spatial)
    count = math.prod(input_shape[:len(input_shape) - nd])
    plane = math.prod(input_shape[len(input_shape) - nd:])
    rows = xp.arange(count, dtype=xp.int64).reshape(count, 1) * plane
    flat = (indices.reshape(count, -1) + rows).reshape(-1)
    # bincount sums repeated indices (overlapping windows) and runs on numpy and cupy
    summed = xp.bincount(flat, weights=g.reshape(-1), minlength=count * plane)
    return summed.astype(g.dtype).reshape(tuple(input_shape))


max_pool_grad = defop("max_pool_grad", infer=_scatter_meta,
                      grad_name="MaxPool2DWithIndicesBackwardBackward0", save=(1,))(_scatter)


@max_pool_grad.def_backward
def _(ctx, gg):
    (indices,) = ctx.saved
    return (gg._op("max_pool", gg, indices, **_spatial_attr(ctx)), None)


# -- average pooling --------------------------------------------------------------------------
def _divisors(np_, shape, kernel, stride, padding, out, count_include_pad, divisor_override):
    """The divisor of each output position, (*out,) as a numpy array: separable per dim."""
    if divisor_override:
        return np_.full(out, float(divisor_override))
    total = np_.ones(out)
    for i, (size, k, s, p, o) in enumerate(zip(shape[2:], kernel, stride, padding, out,
                                               strict=True)):
        start = np_.arange(o) * s - p
        end = np_.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = np_.maximum(start, 0), np_.minimum(end, size)
        total = total * (end - start).reshape((-1,) + (1,) * (len(out) - 1 - i))
    return total


def _avg_meta(x, *, kernel, stride, padding, ceil_mode, count_include_pad=True,
              divisor_override=None):
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError('"avg_pool2d" not implemented for '
                                   f"'{x.dtype.name.capitalize()}'")
    if divisor_override is not None and divisor_override == 0:
        raise InvalidArgumentError("divisor must be not zero")
    shape, lifted = _lifted(x.shape, len(kernel))
    out = _pool_shape(shape, kernel, stride, padding, (1,) * len(kernel), ceil_mode, "avg_pool")
    return Meta(out[1:] if lifted else out, x.dtype)


def _avg(xp, x, *, kernel, stride, padding, ceil_mode, count_include_pad=True,
         divisor_override=None):
    nd = len(kernel)
    if x.ndim == nd + 1:
        return _avg(xp, x[None], kernel=kernel, stride=stride, padding=padding,
                    ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                    divisor_override=divisor_override)[0]
    ones = (1,) * nd
    shape = _pool_shape(x.shape, kernel, stride, padding, ones, ceil_mode, "avg_pool")
    out = shape[2:]
    pads = _window_pad(x.shape, kernel, stride, padding, ones, out)
    view = windows(xp, pad_zeros(xp, x, pads), kernel, stride, ones, out)
    summed = view.sum(axis=tuple(range(2, 2 + nd)))
    div = _divisors(np, x.shape, kernel, stride, padding, out, count_include_pad,
                    divisor_override)
    return summed / xp.asarray(div.astype(x.dtype))


def _pool_attrs(ctx):
    return {k: v for k, v in ctx.attrs.items() if k != "input_shape"}


avg_pool = defop("avg_pool", infer=_avg_meta,
                 grad_name=lambda x, **a: f"AvgPool{len(a['kernel'])}DBackward0")(_avg)


@avg_pool.def_backward
def _(ctx, g):
    return (g._op("avg_pool_grad", g, input_shape=tuple(ctx.in_shapes[0]), **_pool_attrs(ctx)),)


def _avg_grad_meta(g, *, input_shape, kernel, stride, padding, ceil_mode,
                   count_include_pad=True, divisor_override=None):
    shape, lifted = _lifted(input_shape, len(kernel))
    want = _pool_shape(shape, kernel, stride, padding, (1,) * len(kernel), ceil_mode, "avg_pool")
    want = want[1:] if lifted else want
    if tuple(g.shape) != want:
        raise InvalidArgumentError(f"avg_pool_grad: grad of shape {list(g.shape)}, expected "
                                   f"{list(want)}")
    return Meta(tuple(input_shape), g.dtype)


def _avg_grad(xp, g, *, input_shape, kernel, stride, padding, ceil_mode,
              count_include_pad=True, divisor_override=None):
    input_shape = tuple(input_shape)
    if len(input_shape) == len(kernel) + 1:
        return _avg_grad(xp, g[None], input_shape=(1, *input_shape), kernel=kernel,
                         stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad,
                         divisor_override=divisor_override)[0]
    out = g.shape[2:]
    ones = (1,) * len(kernel)
    div = _divisors(np, input_shape, kernel, stride, padding, out, count_include_pad,
                    divisor_override)
    share = g / xp.asarray(div.astype(g.dtype))
    pads = _window_pad(input_shape, kernel, stride, padding, ones, out)
    padded = input_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(input_shape[2:], pads,
                                                                         strict=True))
    acc = xp.zeros(padded, dtype=g.dtype)
    lead = (slice(None), slice(None))
    for ks in itertools.product(*(range(k) for k in kernel)):
        region = tuple(slice(k, k + s * (o - 1) + 1, s)
                       for k, s, o in zip(ks, stride, out, strict=True))
        acc[lead + region] += share
    crop = tuple(slice(lo, lo + s) for s, (lo, _) in zip(input_shape[2:], pads, strict=True))
    return acc[lead + crop]


avg_pool_grad = defop("avg_pool_grad", infer=_avg_grad_meta,
                      grad_name="AvgPool2DBackwardBackward0")(_avg_grad)


@avg_pool_grad.def_backward
def _(ctx, gg):
    return (gg._op("avg_pool", gg, **_pool_attrs(ctx)),)


# -- adaptive average pooling -----------------------------------------------------------------
def _adaptive_matrix(size: int, out: int, dtype) -> np.ndarray:
    """(out, size): row i averages input [floor(i*size/out), ceil((i+1)*size/out))."""
    m = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _apply_matrices(xp, a, matrices):
    """Contract each spatial dim i of a (N, C, *S) with matrices[i] (new, old)."""
    for i, m in enumerate(matrices):
        axis = 2 + i
        moved = xp.moveaxis(a, axis, -1)
        a = xp.moveaxis(moved @ xp.asarray(m.T), -1, axis)
    return a


def _adaptive_meta(x, *, output_size):
    if len(x.shape) not in (len(output_size) + 1, len(output_size) + 2):
        raise InvalidArgumentError(f"adaptive_avg_pool: expected a {len(output_size) + 2}-D "
                                   f"input, got {len(x.shape)}-D")
    if any(o < 1 for o in output_size):
        raise InvalidArgumentError("adaptive_avg_pool: output sizes must be positive")
    lead = len(x.shape) - len(output_size)
    return Meta(tuple(x.shape[:lead]) + tuple(output_size), x.dtype)


def _adaptive(xp, x, *, output_size):
    if x.ndim == len(output_size) + 1:
        return _adaptive(xp, x[None], output_size=output_size)[0]
    mats = [_adaptive_matrix(s, o, x.dtype) for s, o in zip(x.shape[2:], output_size,
                                                            strict=True)]
    return xp.ascontiguousarray(_apply_matrices(xp, x, mats))


adaptive_avg_pool = defop(
    "adaptive_avg_pool", infer=_adaptive_meta,
    grad_name=lambda x, **a: f"AdaptiveAvgPool{len(a['output_size'])}DBackward0")(_adaptive)


@adaptive_avg_pool.def_backward
def _(ctx, g):
    shape = tuple(ctx.in_shapes[0])
    nd = len(ctx.attrs["output_size"])
    spatial = {"spatial": nd} if len(shape) == nd + 1 else {}
    return (g._op("adaptive_avg_pool_grad", g, input_shape=shape, **spatial),)


def _adaptive_grad_meta(g, *, input_shape, spatial=None):
    return Meta(tuple(input_shape), g.dtype)


def _adaptive_grad(xp, g, *, input_shape, spatial=None):
    if spatial is not None and len(input_shape) == int(spatial) + 1:
        return _adaptive_grad(xp, g[None], input_shape=(1, *input_shape))[0]
    mats = [_adaptive_matrix(s, o, g.dtype).T for s, o in zip(input_shape[2:], g.shape[2:],
                                                              strict=True)]
    return xp.ascontiguousarray(_apply_matrices(xp, g, mats))


adaptive_avg_pool_grad = defop("adaptive_avg_pool_grad", infer=_adaptive_grad_meta,
                               grad_name="AdaptiveAvgPool2DBackwardBackward0")(_adaptive_grad)


@adaptive_avg_pool_grad.def_backward
def _(ctx, gg):
    shape, spatial = tuple(ctx.in_shapes[0]), ctx.attrs.get("spatial")
    nd = len(shape) - 2 if spatial is None else int(spatial)
    return (gg._op("adaptive_avg_pool", gg, output_size=shape[len(shape) - nd:]),)
