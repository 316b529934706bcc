"""Functional forms of the spatial layers API.md section 7 adds (re-exported by
gradserve.nn.functional): conv3d, transposed convolutions, adaptive max pooling,
interpolate, unfold/fold and pixel (un)shuffle.

Each is one registry op, as torch's is one kernel (so grad_fn and next_functions are
torch's too), and a remote call is one op on the wire.
"""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError

from ._f_conv import _batched, _conv, _tuple


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
    operands = (x, weight, 0 if bias is None else bias)  # 0: torch's None edge for no bias
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


def _adaptive_max(input, output_size, dims, return_indices, name):
    nd = input.dim()
    if nd not in (dims + 1, dims + 2):
        raise InvalidArgumentError(f"{name}(): Expected {dims + 1}D or {dims + 2}D tensor, but "
                                   f"got: {list(input.shape)}")
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else \
        (output_size,) * dims
    if len(size) != dims:
        raise InvalidArgumentError(f"{name}(): internal error: output_size.size() must be "
                                   f"{dims}")
    size = tuple(input.shape[i - dims] if o is None else int(o) for i, o in enumerate(size))
    indices = input._op("adaptive_max_pool_indices", input, output_size=size)
    out = input._op("adaptive_max_pool", input, indices, dims=dims)
    return (out, indices) if return_indices else out


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over windows sized so the output is `output_size` (window i of n over a length L
    spans [floor(i L / n), ceil((i + 1) L / n))); with `return_indices`, also each maximum's
    flat index into its input plane, as torch's.

    >>> F.adaptive_max_pool2d(engine.arange(16.).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    return _adaptive_max(input, output_size, 2, return_indices, "adaptive_max_pool2d")


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """adaptive_max_pool2d over the last dim, as torch's (through a height of 1).

    >>> F.adaptive_max_pool1d(engine.tensor([[[1., 3., 2., 5., 4.]]]), 2)
    tensor([[[3., 5.]]])
    """
    if input.dim() not in (2, 3):
        raise InvalidArgumentError(f"adaptive_max_pool1d(): Expected 2D or 3D tensor, but "
                                   f"got: {list(input.shape)}")
    (size,) = _tuple(output_size, 1, "output_size")
    out = _adaptive_max(input.unsqueeze(-2), (1, size), 2, True, "adaptive_max_pool1d")
    values, indices = out[0].squeeze(-2), out[1].squeeze(-2)
    return (values, indices) if return_indices else values


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
    kind = "nearest" if mode == "nearest" else "linear"
    return input._op("upsample", input, mode=kind, size=tuple(int(n) for n in out_sizes),
                     scales=tuple(scales), align_corners=bool(align_corners))


# -- unfold / fold ----------------------------------------------------------------------------
def _geometry(kernel_size, dilation, padding, stride):
    return {name: _tuple(v, 2, name) for name, v in (
        ("kernel", kernel_size), ("dilation", dilation), ("padding", padding),
        ("stride", stride))}


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of (N, C, H, W) (or (C, H, W)) as columns (N, C * kH * kW, L):
    torch's im2col.

    >>> F.unfold(engine.arange(9.).reshape(1, 1, 3, 3), 2).shape
    (1, 4, 4)
    """
    return input._op("im2col", input, **_geometry(kernel_size, dilation, padding, stride))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: columns (N, C * kH * kW, L) summed back into (N, C, H, W):
    torch's col2im.

    >>> F.fold(engine.ones(1, 4, 4), (3, 3), 2)[0, 0]
    tensor([[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]])
    """
    return input._op("col2im", input, output_size=_tuple(output_size, 2, "output_size"),
                     **_geometry(kernel_size, dilation, padding, stride))


def pixel_shuffle(input, upscale_factor):
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r).

    >>> F.pixel_shuffle(engine.arange(4.).reshape(1, 4, 1, 1), 2)
    tensor([[[[0., 1.],
              [2., 3.]]]])
    """
    return input._op("pixel_shuffle", input, upscale_factor=int(upscale_factor))


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W), pixel_shuffle's inverse."""
    return input._op("pixel_unshuffle", input, downscale_factor=int(downscale_factor))
