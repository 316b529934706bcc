"""Resampling ops, each one torch kernel with torch's grad_fn: upsampling (`F.interpolate`,
nearest and (bi/tri)linear), im2col/col2im (`F.unfold`/`F.fold`) and pixel (un)shuffle.

Each is linear in its input, so its gradient is its adjoint, registered as a second op whose
gradient is the first again: the pair is closed under differentiation (double backward
works). Source indices and weights follow torch's CPU kernels, computed in the input's
floating type as torch's `opmath` does, so results agree with torch's to the last bits.

    >>> from gradserve import engine
    >>> x = engine.tensor([[[1., 2.]]], requires_grad=True)
    >>> y = x._op("upsample", x, mode="linear", size=(4,), scales=(2.0,), align_corners=False)
    >>> y.tolist(), type(y.grad_fn).__name__
    ([[[1.0, 1.25, 1.75, 2.0]]], 'UpsampleLinear1DBackward0')
"""

from __future__ import annotations

import math

import numpy as np

from ...core.backend import scatter_add
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from .conv import pad_zeros, windows


# -- upsample ---------------------------------------------------------------------------------
def _nearest_source(n_in: int, n_out: int, scale) -> np.ndarray:
    """torch's nearest_idx: floor(i * s) in float32, s = 1/scale_factor or in/out."""
    i = np.arange(n_out)
    if n_in == n_out:
        return i
    if n_out == 2 * n_in:
        return i >> 1
    s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(i.astype(np.float32) * s).astype(np.int64), n_in - 1)


def _linear_source(n_in: int, n_out: int, scale, align_corners: bool, dtype):
    """torch's linear source indices (i0, i1) and weight of i1, in the input's float type."""
    t = np.dtype(dtype).type
    if align_corners:
        s = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
        src = s * np.arange(n_out).astype(dtype)
    else:  # torch: scale (opmath) * (i + 0.5) - 0.5 in double, then back to opmath
        s = t(1.0 / scale) if scale else t(n_in) / t(n_out)
        src = np.maximum(np.float64(s) * (np.arange(n_out) + 0.5) - 0.5, 0.0).astype(dtype)
    i0 = src.astype(np.int64)  # src >= 0: truncation is floor
    i1 = i0 + (i0 < n_in - 1)
    w1 = np.clip(src - i0.astype(dtype), t(0), t(1)).astype(dtype)
    return i0, i1, w1


_UP_NAMES = {("nearest", 1): "UpsampleNearest1DBackward0",
             ("nearest", 2): "UpsampleNearest2DBackward0",
             ("nearest", 3): "UpsampleNearest3DBackward0",
             ("linear", 1): "UpsampleLinear1DBackward0",
             ("linear", 2): "UpsampleBilinear2DBackward0",
             ("linear", 3): "UpsampleTrilinear3DBackward0"}


def _up_meta(x, *, mode, size, scales, align_corners=False):
    nd = len(x.shape) - 2
    if mode not in ("nearest", "linear") or nd not in (1, 2, 3) or len(size) != nd:
        raise InvalidArgumentError(f"upsample: mode {mode!r} over {nd} spatial dims (with "
                                   f"size {list(size)}) is not supported")
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError(f"\"upsample_{mode}\" not implemented for "
                                   f"'{x.dtype.name.capitalize()}'")
    if any(int(n) <= 0 for n in size) or any(n <= 0 for n in x.shape[2:]):
        raise InvalidArgumentError(
            f"Input and output sizes should be greater than 0, but got input "
            f"({', '.join(map(str, x.shape[2:]))}) and output ({', '.join(map(str, size))})")
    return Meta(tuple(x.shape[:2]) + tuple(int(n) for n in size), x.dtype)


def _up_name(x, *, mode, size, scales, align_corners=False):
    return _UP_NAMES[(mode, len(x.shape) - 2)]


def _upsample(xp, x, *, mode, size, scales, align_corners=False):
    # the last spatial dim first: torch's kernel interpolates along it innermost
    for d in reversed(range(len(size))):
        n_out, scale = size[d], scales[d]
        axis, n_in = d + 2, x.shape[d + 2]
        if mode == "nearest":
            x = xp.take(x, xp.asarray(_nearest_source(n_in, n_out, scale)), axis=axis)
            continue
        i0, i1, w1 = _linear_source(n_in, n_out, scale, align_corners, x.dtype)
        shape = [1] * x.ndim
        shape[axis] = n_out
        w1 = xp.asarray(w1.reshape(shape))
        a, b = xp.take(x, xp.asarray(i0), axis=axis), xp.take(x, xp.asarray(i1), axis=axis)
        x = (1 - w1) * a + w1 * b
    return x


upsample = defop("upsample", infer=_up_meta, grad_name=_up_name,
                 attrs=("mode", "size", "scales", "align_corners"))(_upsample)


@upsample.def_backward
def _(ctx, g):
    return (g._op("upsample_grad", g, input_size=tuple(ctx.in_shapes[0][2:]), **ctx.attrs),)


def _up_grad_meta(g, *, input_size, mode, size, scales, align_corners=False):
    return Meta(tuple(g.shape[:2]) + tuple(input_size), g.dtype)


def _upsample_grad(xp, g, *, input_size, mode, size, scales, align_corners=False):
    """The adjoint, axis by axis: each output position's gradient added into the input
    positions it read (only those, as torch's kernel: an infinite g reaches no other)."""
    for d in reversed(range(len(size))):
        n_in, n_out, moved = input_size[d], size[d], xp.moveaxis(g, d + 2, 0)
        out = xp.zeros((n_in, *moved.shape[1:]), g.dtype)
        if mode == "nearest":
            _add_rows(xp, out, _nearest_source(n_in, n_out, scales[d]), moved)
        else:
            i0, i1, w1 = _linear_source(n_in, n_out, scales[d], align_corners, g.dtype)
            w1 = xp.asarray(w1).reshape((-1,) + (1,) * (moved.ndim - 1))
            _add_rows(xp, out, i0, moved * (1 - w1))
            _add_rows(xp, out, i1, moved * w1)
        g = xp.moveaxis(out, 0, d + 2)
    return xp.ascontiguousarray(g)


def _add_rows(xp, out, index: np.ndarray, rows) -> None:
    """out[index[k]] += rows[k] for a non-decreasing host `index` (a source axis's): each run
    of equal indices summed in one reduceat on numpy, 3x faster than add.at here."""
    if xp is not np:
        scatter_add(xp, out, (xp.asarray(index),), rows)
        return
    if index.size:
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        out[index[starts]] += np.add.reduceat(rows, starts, axis=0)


upsample_grad = defop("upsample_grad", infer=_up_grad_meta,
                      grad_name="UpsampleBackwardBackward0")(_upsample_grad)


@upsample_grad.def_backward
def _(ctx, gg):
    attrs = {k: v for k, v in ctx.attrs.items() if k != "input_size"}
    return (gg._op("upsample", gg, **attrs),)


# -- im2col / col2im (unfold / fold) ----------------------------------------------------------
def _geometry(kernel, dilation, padding, stride):
    return tuple(tuple(int(v) for v in t) for t in (kernel, dilation, padding, stride))


def _blocks(size, kernel, dilation, padding, stride):
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, d, p, s in zip(
        size, kernel, dilation, padding, stride, strict=True))


def _im2col_meta(x, *, kernel, dilation, padding, stride):
    if len(x.shape) not in (3, 4):
        raise InvalidArgumentError("Input Error: Only 3D or 4D input Tensors are supported "
                                   f"(got {len(x.shape)}D)")
    kernel, dilation, padding, stride = _geometry(kernel, dilation, padding, stride)
    blocks = _blocks(x.shape[-2:], kernel, dilation, padding, stride)
    if min(blocks) < 1:
        raise InvalidArgumentError(
            f"Given input with spatial size ({x.shape[-2]}, {x.shape[-1]}), kernel_size="
            f"{kernel}, dilation={dilation}, padding={padding}, calculated shape of the array "
            f"of sliding blocks as ({blocks[0]}, {blocks[1]}), but its components must be at "
            "least one.")
    return Meta(tuple(x.shape[:-3]) + (x.shape[-3] * math.prod(kernel), math.prod(blocks)),
                x.dtype)


def _im2col(xp, x, *, kernel, dilation, padding, stride):
    kernel, dilation, padding, stride = _geometry(kernel, dilation, padding, stride)
    batched = x.ndim == 4
    x4 = x if batched else x[None]
    out = _blocks(x4.shape[2:], kernel, dilation, padding, stride)
    view = windows(xp, pad_zeros(xp, x4, tuple((p, p) for p in padding)), kernel, stride,
                   dilation, out)
    n, c = x4.shape[:2]
    cols = xp.ascontiguousarray(view).reshape(n, c * math.prod(kernel), math.prod(out))
    return cols if batched else cols[0]


def _col2im_meta(cols, *, output_size, kernel, dilation, padding, stride):
    if len(cols.shape) not in (2, 3):
        raise InvalidArgumentError("Input Error: Only unbatched (2D) or batched (3D) input "
                                   f"Tensors are supported (got {len(cols.shape)}D)")
    kernel, dilation, padding, stride = _geometry(kernel, dilation, padding, stride)
    k = math.prod(kernel)
    rows, length = cols.shape[-2:]
    if rows % k:
        raise InvalidArgumentError(
            "Expected size of input's dimension 1 to be divisible by the product of "
            f"kernel_size, but got input.size(1)={rows} and kernel_size={kernel}")
    blocks = _blocks(output_size, kernel, dilation, padding, stride)
    if math.prod(blocks) != length:
        raise InvalidArgumentError(
            f"Given output_size={tuple(output_size)}, kernel_size={kernel}, dilation="
            f"{dilation}, padding={padding}, stride={stride}, expected size of input's "
            f"dimension 2 to match the calculated number of sliding blocks {blocks[0]} * "
            f"{blocks[1]} = {math.prod(blocks)}, but got input.size(2)={length}.")
    return Meta(tuple(cols.shape[:-2]) + (rows // k,) + tuple(int(n) for n in output_size),
                cols.dtype)


def _col2im(xp, cols, *, output_size, kernel, dilation, padding, stride):
    kernel, dilation, padding, stride = _geometry(kernel, dilation, padding, stride)
    batched = cols.ndim == 3
    c3 = cols if batched else cols[None]
    n, rows = c3.shape[:2]
    c = rows // math.prod(kernel)
    blocks = _blocks(output_size, kernel, dilation, padding, stride)
    planes = c3.reshape((n, c) + kernel + blocks)
    (oh, ow), (ph, pw) = output_size, padding
    out = xp.zeros((n, c, oh + 2 * ph, ow + 2 * pw), dtype=cols.dtype)
    (bh, bw), (sh, sw), (dh, dw) = blocks, stride, dilation
    for i in range(kernel[0]):  # one strided add per kernel offset (overlaps add up)
        for j in range(kernel[1]):
            out[:, :, i * dh:i * dh + (bh - 1) * sh + 1:sh,
                j * dw:j * dw + (bw - 1) * sw + 1:sw] += planes[:, :, i, j]
    out = out[:, :, ph:ph + oh, pw:pw + ow]
    return xp.ascontiguousarray(out if batched else out[0])


im2col = defop("im2col", infer=_im2col_meta, grad_name="Im2ColBackward0",
               attrs=("kernel", "dilation", "padding", "stride"))(_im2col)
col2im = defop("col2im", infer=_col2im_meta, grad_name="Col2ImBackward0",
               attrs=("output_size", "kernel", "dilation", "padding", "stride"))(_col2im)


@im2col.def_backward
def _(ctx, g):
    return (g._op("col2im", g, output_size=tuple(ctx.in_shapes[0][-2:]), **ctx.attrs),)


@col2im.def_backward
def _(ctx, g):
    attrs = {k: v for k, v in ctx.attrs.items() if k != "output_size"}
    return (g._op("im2col", g, **attrs),)


# -- pixel shuffle ----------------------------------------------------------------------------
def _shuffle_meta(x, *, upscale_factor):
    r = int(upscale_factor)
    if len(x.shape) < 3:
        raise InvalidArgumentError("pixel_shuffle expects input to have at least 3 dimensions, "
                                   f"but got input with {len(x.shape)} dimension(s)")
    if r <= 0:
        raise InvalidArgumentError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *batch, c, h, w = x.shape
    if c % (r * r):
        raise InvalidArgumentError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
            f"square of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    return Meta(tuple(batch) + (c // (r * r), h * r, w * r), x.dtype)


def _unshuffle_meta(x, *, downscale_factor):
    r = int(downscale_factor)
    if len(x.shape) < 3:
        raise InvalidArgumentError("pixel_unshuffle expects input to have at least 3 "
                                   f"dimensions, but got input with {len(x.shape)} dimension(s)")
    if r <= 0:
        raise InvalidArgumentError("pixel_unshuffle expects a positive downscale_factor, but "
                                   f"got {r}")
    *batch, c, h, w = x.shape
    for what, n in (("height", h), ("width", w)):
        if n % r:
            raise InvalidArgumentError(
                f"pixel_unshuffle expects {what} to be divisible by downscale_factor, but "
                f"input.size({-2 if what == 'height' else -1})={n} is not divisible by {r}")
    return Meta(tuple(batch) + (c * r * r, h // r, w // r), x.dtype)


def _shuffle(xp, x, *, upscale_factor):
    r = int(upscale_factor)
    *batch, c, h, w = x.shape
    nb = len(batch)
    y = x.reshape(*batch, c // (r * r), r, r, h, w)
    y = y.transpose(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)
    return xp.ascontiguousarray(y).reshape(*batch, c // (r * r), h * r, w * r)


def _unshuffle(xp, x, *, downscale_factor):
    r = int(downscale_factor)
    *batch, c, h, w = x.shape
    nb = len(batch)
    y = x.reshape(*batch, c, h // r, r, w // r, r)
    y = y.transpose(*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3)
    return xp.ascontiguousarray(y).reshape(*batch, c * r * r, h // r, w // r)


pixel_shuffle = defop("pixel_shuffle", infer=_shuffle_meta, grad_name="PixelShuffleBackward0",
                      attrs=("upscale_factor",))(_shuffle)
pixel_unshuffle = defop("pixel_unshuffle", infer=_unshuffle_meta,
                        grad_name="PixelUnshuffleBackward0",
                        attrs=("downscale_factor",))(_unshuffle)


@pixel_shuffle.def_backward
def _(ctx, g):
    return (g._op("pixel_unshuffle", g, downscale_factor=ctx.attrs["upscale_factor"]),)


@pixel_unshuffle.def_backward
def _(ctx, g):
    return (g._op("pixel_shuffle", g, upscale_factor=ctx.attrs["downscale_factor"]),)
