"""Functional forms of the spatial layers API.md section 7 adds (re-exported by
gradserve.nn.functional): conv3d, transposed convolutions, adaptive max pooling,
interpolate, unfold/fold and pixel (un)shuffle.

Each is one registry op or a composition of existing ops (index_select, convolution with a
one-hot kernel, reshapes), so results and gradients are torch's and a remote call stays a
few ops on the wire.
"""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError, stack

from ._f_conv import _batched, _conv, _tuple, max_pool2d


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-d convolution of (N, C, D, H, W) with weight (O, C/groups, kD, kH, kW).

    >>> F.conv3d(engine.ones(1, 1, 3, 3, 3), engine.ones(1, 1, 2, 2, 2)).shape
    (1, 1, 2, 2, 2)
    """
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    x, added = _batched(input, nd, f"conv_transpose{nd}d")
    kernel = tuple(weight.shape[2:])
    stride = _tuple(stride, nd, "stride")
    padding = _tuple(padding, nd, "padding")
    dilation = _tuple(dilation, nd, "dilation")
    output_padding = _tuple(output_padding, nd, "output_padding")
    for op, s, d in zip(output_padding, stride, dilation, strict=True):
        if op >= s and op >= d:
            raise InvalidArgumentError("output padding must be smaller than either stride or "
                                       "dilation, but got output_padding_height: "
                                       f"{output_padding[0]} output_padding_width: "
                                       f"{output_padding[-1]} stride_height: {stride[0]} "
                                       f"stride_width: {stride[-1]} dilation_height: "
                                       f"{dilation[0]} dilation_width: {dilation[-1]}")
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in zip(
        x.shape[2:], stride, padding, dilation, kernel, output_padding, strict=True))
    operands = (x, weight) if bias is None else (x, weight, bias)
    y = x._op("conv_transpose", *operands, stride=stride, padding=tuple((p, p) for p in padding),
              dilation=dilation, groups=int(groups), output_size=size)
    return y.squeeze(0) if added else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed 1-d convolution of (N, Cin, L) with weight (Cin, Cout/groups, K).

    >>> F.conv_transpose1d(engine.ones(1, 1, 2), engine.ones(1, 1, 2))
    tensor([[[1., 2., 1.]]])
    """
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed 2-d convolution of (N, Cin, H, W) with weight (Cin, Cout/groups, kH, kW).

    >>> F.conv_transpose2d(engine.ones(1, 1, 2, 2), engine.ones(1, 1, 2, 2), stride=2).shape
    (1, 1, 4, 4)
    """
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed 3-d convolution of (N, Cin, D, H, W)."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over windows sized so the output is `output_size` (window i of n over a length L
    spans [floor(i L / n), ceil((i + 1) L / n))).

    >>> F.adaptive_max_pool2d(engine.arange(16.).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    if return_indices:
        raise InvalidArgumentError("adaptive_max_pool2d: return_indices is not supported")
    x, added = _batched(input, 2, "adaptive_max_pool2d")
    h, w = x.shape[2:]
    oh, ow = _tuple(output_size, 2, "output_size") if output_size is not None else (h, w)
    oh, ow = oh or h, ow or w
    if h % oh == 0 and w % ow == 0:  # equal, disjoint windows: a max pool
        out = max_pool2d(x, (h // oh, w // ow))
    else:
        rows = []
        for i in range(oh):
            r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
            cells = []
            for j in range(ow):
                c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
                win = x.narrow(2, r0, r1 - r0).narrow(3, c0, c1 - c0)
                cells.append(win.flatten(2).max(-1).values)
            rows.append(stack(cells, -1))
        out = stack(rows, -2)
    return out.squeeze(0) if added else out


# -- interpolate ------------------------------------------------------------------------------
_MODES = {"nearest": 0, "linear": 1, "bilinear": 2, "trilinear": 3}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, *S) to `size` (or S * scale_factor): nearest, linear (1-d) or
    bilinear (2-d), with torch's source-index rules and `align_corners`.

    >>> F.interpolate(engine.tensor([[[1., 2.]]]), scale_factor=2, mode="linear")
    tensor([[[1.0000, 1.2500, 1.7500, 2.0000]]])
    """
    nd = input.dim() - 2
    if mode not in _MODES:
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode is not supported "
                                  "here")
    if mode != "nearest" and _MODES[mode] != nd:
        raise NotImplementedError(
            f"Got {input.dim()}D input, but {mode} mode needs {_MODES[mode] + 2}D input")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    in_sizes = tuple(input.shape[2:])
    if size is not None:
        out_sizes = _tuple(size, nd, "size")
        scales = [None] * nd
    else:
        factors = [float(f) for f in (scale_factor if isinstance(scale_factor, (list, tuple))
                                      else [scale_factor] * nd)]
        out_sizes = tuple(int(math.floor(n * f)) for n, f in zip(in_sizes, factors,
                                                                 strict=True))
        scales = [None] * nd if recompute_scale_factor else factors
    out = input
    for d in range(nd):
        n_in, n_out, s = in_sizes[d], out_sizes[d], scales[d]
        axis = d + 2
        if mode == "nearest":
            ratio = (1.0 / s) if s else n_in / n_out
            idx = [min(int(math.floor(i * ratio)), n_in - 1) for i in range(n_out)]
            out = out.index_select(axis, out.new_tensor(idx, dtype="int64"))
        else:
            out = _linear_axis(out, axis, n_in, n_out, s, bool(align_corners))
    return out


def _linear_axis(x, axis, n_in, n_out, scale, align_corners):
    if align_corners:
        ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        ratio = (1.0 / scale) if scale else n_in / n_out
    lo, hi, weights = [], [], []
    for i in range(n_out):
        src = i * ratio if align_corners else max((i + 0.5) * ratio - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        lo.append(i0)
        hi.append(min(i0 + 1, n_in - 1))
        weights.append(src - i0)
    shape = [1] * x.dim()
    shape[axis] = n_out
    w = x.new_tensor(weights).reshape(shape)
    a = x.index_select(axis, x.new_tensor(lo, dtype="int64"))
    b = x.index_select(axis, x.new_tensor(hi, dtype="int64"))
    return a + (b - a) * w


# -- unfold / fold ----------------------------------------------------------------------------
def _one_hot_kernel(x, channels, kernel):
    """(channels * prod(kernel), 1, *kernel): one one-hot kernel per (channel, offset),
    torch's unfold order; a grouped convolution with it extracts the patches."""
    k = math.prod(kernel)
    eye = x._op("eye", n=k, dtype=x.dtype.name, device=str(x.device))
    return eye.reshape((1, k, 1) + tuple(kernel)).expand(
        (channels, k, 1) + tuple(kernel)).reshape((channels * k, 1) + tuple(kernel))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of (N, C, H, W) as columns (N, C * kH * kW, L).

    >>> F.unfold(engine.arange(9.).reshape(1, 1, 3, 3), 2).shape
    (1, 4, 4)
    """
    if input.dim() not in (3, 4):
        raise NotImplementedError(f"Input Error: Only 3D or 4D input Tensors are supported "
                                  f"(got {input.dim()}D)")
    x, added = _batched(input, 2, "unfold")
    kernel = _tuple(kernel_size, 2, "kernel_size")
    c = x.shape[1]
    w = _one_hot_kernel(x, c, kernel)
    cols = _conv(2, x, w, None, stride, padding, dilation, c)
    cols = cols.reshape(cols.shape[0], cols.shape[1], -1)
    return cols.squeeze(0) if added else cols


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: columns (N, C * kH * kW, L) summed back into (N, C, H, W).

    >>> F.fold(engine.ones(1, 4, 4), (3, 3), 2)[0, 0]
    tensor([[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]])
    """
    if input.dim() not in (2, 3):
        raise NotImplementedError(f"Input Error: Only unbatched (2D) or batched (3D) input "
                                  f"Tensors are supported (got {input.dim()}D)")
    x = input.unsqueeze(0) if input.dim() == 2 else input
    kernel = _tuple(kernel_size, 2, "kernel_size")
    size = _tuple(output_size, 2, "output_size")
    stride, padding, dilation = (_tuple(v, 2, n) for v, n in ((stride, "stride"),
                                                               (padding, "padding"),
                                                               (dilation, "dilation")))
    k = math.prod(kernel)
    if x.shape[1] % k:
        raise InvalidArgumentError(
            "Expected size of input's dimension 1 to be divisible by the product of "
            f"kernel_size, but got input.size(1)={x.shape[1]} and kernel_size={kernel}")
    blocks = [(n + 2 * p - d * (kk - 1) - 1) // s + 1 for n, p, d, kk, s in zip(
        size, padding, dilation, kernel, stride, strict=True)]
    if math.prod(blocks) != x.shape[2]:
        raise InvalidArgumentError(
            f"Given output_size={size}, kernel_size={kernel}, dilation={dilation}, "
            f"padding={padding}, stride={stride}, expected size of input's dimension 2 to "
            f"match the calculated number of sliding blocks {blocks[0]} * {blocks[1]} = "
            f"{math.prod(blocks)}, but got input.size(2)={x.shape[2]}.")
    c = x.shape[1] // k
    w = _one_hot_kernel(x, c, kernel)
    planes = x.reshape(x.shape[0], x.shape[1], *blocks)
    out = planes._op("conv_transpose", planes, w, stride=stride,
                     padding=tuple((p, p) for p in padding), dilation=dilation, groups=c,
                     output_size=size)
    return out.squeeze(0) if input.dim() == 2 else out


def pixel_shuffle(input, upscale_factor):
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r).

    >>> F.pixel_shuffle(engine.arange(4.).reshape(1, 4, 1, 1), 2)
    tensor([[[[0., 1.],
              [2., 3.]]]])
    """
    r = int(upscale_factor)
    *batch, c, h, w = input.shape
    if c % (r * r):
        raise InvalidArgumentError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
            f"square of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    nb = len(batch)
    x = input.reshape(*batch, c // (r * r), r, r, h, w)
    x = x.permute(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)
    return x.reshape(*batch, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W), pixel_shuffle's inverse."""
    r = int(downscale_factor)
    *batch, c, h, w = input.shape
    nb = len(batch)
    x = input.reshape(*batch, c, h // r, r, w // r, r)
    x = x.permute(*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3)
    return x.reshape(*batch, c * r * r, h // r, w // r)
