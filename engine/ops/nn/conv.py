"""Convolution (1-d, 2-d, any number of spatial dims) as an im2col view plus one matmul.

`convolution(x, w[, b])` takes x (N, C, *S) and w (O, C/groups, *K) with attrs
stride, padding ((lo, hi) per spatial dim), dilation and groups, all already normalised by
`gradserve.nn.functional`. Its two gradients are ops of their own, and the three are closed
under differentiation (each is bilinear, and each one's adjoints are the other two), so
backward of backward is exact:

    convolution(x, w)            dx = conv_input_grad(g, w)    dw = conv_weight_grad(x, g)
    conv_input_grad(g, w)        dg = convolution(gg, w)       dw = conv_weight_grad(gg, g)
    conv_weight_grad(x, g)       dx = conv_input_grad(g, gw)   dg = convolution(x, gw)

The forward builds a strided window view of the padded input (`as_strided`, so numpy and
cupy alike), copies it once into columns (N, G, C/G * K, L) and multiplies by the weight as
(G, O/G, C/G * K): one batched matmul that lands directly in (N, O, *out) order.

    >>> from gradserve import engine
    >>> x = engine.ones(1, 1, 3, 3)
    >>> w = engine.ones(1, 1, 2, 2)
    >>> x._op("convolution", x, w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
    ...       groups=1)
    tensor([[[[4., 4.],
              [4., 4.]]]])
"""

from __future__ import annotations

import itertools
import math

from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop


# -- shapes -----------------------------------------------------------------------------------
def out_size(size: int, k: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    """Output length of one spatial dim (floor mode)."""
    return (size + lo + hi - dilation * (k - 1) - 1) // stride + 1


def _spatial(shape) -> str:
    return " x ".join(map(str, shape))


def _conv_out_shape(x_shape, w_shape, stride, padding, dilation, groups):
    nd = len(w_shape) - 2
    if nd < 1 or len(x_shape) != nd + 2:
        raise InvalidArgumentError(
            f"Expected {nd + 2}D (batched) input to conv{nd}d, but got input of size: "
            f"{list(x_shape)}"
        )
    if len(stride) != nd or len(padding) != nd or len(dilation) != nd:
        raise InvalidArgumentError("convolution: stride, padding and dilation need one entry "
                                   f"per spatial dim ({nd})")
    n, c = x_shape[:2]
    o, cg = w_shape[:2]
    if groups < 1 or o % groups:
        raise InvalidArgumentError("out_channels must be divisible by groups" if groups >= 1
                                   else "non-positive groups is not supported")
    if c != cg * groups:
        raise InvalidArgumentError(
            f"Given groups={groups}, weight of size {list(w_shape)}, expected input"
            f"{list(x_shape)} to have {cg * groups} channels, but got {c} channels instead"
        )
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise InvalidArgumentError("non-positive stride or dilation is not supported")
    if any(lo < 0 or hi < 0 for lo, hi in padding):
        raise InvalidArgumentError("negative padding is not supported")
    spatial = []
    for size, k, s, (lo, hi), d in zip(x_shape[2:], w_shape[2:], stride, padding, dilation,
                                       strict=True):
        if size + lo + hi < d * (k - 1) + 1:
            padded = [sz + a + b for sz, (a, b) in zip(x_shape[2:], padding, strict=True)]
            kernel = [d_ * (k_ - 1) + 1 for k_, d_ in zip(w_shape[2:], dilation, strict=True)]
            raise InvalidArgumentError(
                f"Calculated padded input size per channel: ({_spatial(padded)}). Kernel size: "
                f"({_spatial(kernel)}). Kernel size can't be greater than actual input size"
            )
        spatial.append(out_size(size, k, s, lo, hi, d))
    return (n, o, *spatial)


def tensor_bias(b):
    """The bias a call adds: a tensor, or None. The client sends a convolution without bias
    with the number 0 in its place, so the node keeps torch's None edge for it (a number
    has no edge); a nonzero number would be added as a scalar."""
    return b if b is None or hasattr(b, "shape") else (None if b == 0 else b)


def _check_dtypes(*metas):
    first = metas[0].dtype
    if not first.is_floating_point:
        raise InvalidArgumentError(f'"slow_conv2d_cpu" not implemented for '
                                   f"'{first.name.capitalize()}'")
    for m in metas[1:]:
        if m.dtype is not first:
            raise InvalidArgumentError(
                f"Input type ({first.name}) and weight type ({m.dtype.name}) should be the same"
            )


# -- array helpers (numpy or cupy through xp) -------------------------------------------------
def pad_zeros(xp, x, padding, fill=0):
    """x (N, C, *S) with (lo, hi) added around each spatial dim, filled with `fill`."""
    if not any(lo or hi for lo, hi in padding):
        return x
    shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], padding,
                                                                     strict=True))
    out = xp.full(shape, fill, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for s, (lo, _) in
                                           zip(x.shape[2:], padding, strict=True))] = x
    return out


def windows(xp, x, kernel, stride, dilation, out):
    """A read-only view (N, C, *kernel, *out) of x (N, C, *S): element [n, c, k.., o..] is
    x[n, c, o * stride + k * dilation]. No copy."""
    st = x.strides
    strides = st[:2] + tuple(s * d for s, d in zip(st[2:], dilation, strict=True)) + tuple(
        s * j for s, j in zip(st[2:], stride, strict=True))
    return xp.lib.stride_tricks.as_strided(x, shape=x.shape[:2] + tuple(kernel) + tuple(out),
                                           strides=strides)


def _columns(xp, x, kernel, stride, padding, dilation, out):
    """im2col: x as (C * prod(kernel), N * prod(out)), one contiguous copy; rows are ordered
    (channel, kernel position), so group g's rows are one contiguous block."""
    view = windows(xp, pad_zeros(xp, x, padding), kernel, stride, dilation, out)
    nd = len(kernel)
    order = (1, *range(2, 2 + nd), 0, *range(2 + nd, 2 + 2 * nd))  # C, K.., N, out..
    n, c = x.shape[:2]
    return xp.ascontiguousarray(view.transpose(order)).reshape(c * math.prod(kernel),
                                                                n * math.prod(out))


def _col2im(xp, cols, in_shape, kernel, stride, padding, dilation, out):
    """The adjoint of _columns: cols (C, *kernel, N, *out) summed back into (N, C, *S).

    It accumulates in (C, N, ...) order, the order cols come in, so every add reads whole
    rows, and transposes once at the end."""
    n, c = in_shape[:2]
    padded = (c, n) + tuple(s + lo + hi for s, (lo, hi) in zip(in_shape[2:], padding,
                                                                strict=True))
    acc = xp.zeros(padded, dtype=cols.dtype)
    lead = (slice(None), slice(None))
    for ks in itertools.product(*(range(k) for k in kernel)):
        region = tuple(slice(k * d, k * d + s * (o - 1) + 1, s)
                       for k, d, s, o in zip(ks, dilation, stride, out, strict=True))
        acc[lead + region] += cols[(slice(None),) + ks]
    crop = tuple(slice(lo, lo + s) for s, (lo, _) in zip(in_shape[2:], padding, strict=True))
    return xp.ascontiguousarray(acc[lead + crop].swapaxes(0, 1))


def _by_group(xp, groups, a, b, transpose_b=False):
    """Per group i, (block i of a's rows) @ (block i of b's rows, transposed if asked),
    stacked. One plain 2-d matmul per group: those always reach BLAS, where numpy's stacked
    (3-d and broadcast) matmul was seen to fall back to loops 5-30x slower."""
    ar, br = a.shape[0] // groups, b.shape[0] // groups
    blocks = []
    for i in range(groups):
        bi = b[i * br:(i + 1) * br]
        blocks.append(xp.matmul(a[i * ar:(i + 1) * ar], bi.T if transpose_b else bi))
    return blocks[0] if groups == 1 else xp.concatenate(blocks)


def _channels_first(xp, g):
    """g (N, O, *out) as (O, N * prod(out)), contiguous."""
    n, o = g.shape[:2]
    return xp.ascontiguousarray(g.reshape(n, o, -1).transpose(1, 0, 2)).reshape(o, -1)


# -- convolution ------------------------------------------------------------------------------
def _conv_meta(x, w, b=None, *, stride, padding, dilation, groups):
    b = b if hasattr(b, "shape") else None
    _check_dtypes(x, w, *(() if b is None else (b,)))
    shape = _conv_out_shape(x.shape, w.shape, stride, padding, dilation, groups)
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise InvalidArgumentError(f"Given weight of size {list(w.shape)}, expected bias to be "
                                   f"1-dimensional with {w.shape[0]} elements, but got bias of "
                                   f"size {list(b.shape)} instead")
    return Meta(shape, x.dtype)


def _conv(xp, x, w, b=None, *, stride, padding, dilation, groups):
    shape = _conv_out_shape(x.shape, w.shape, stride, padding, dilation, groups)
    o, n = shape[1], shape[0]
    cols = _columns(xp, x, w.shape[2:], stride, padding, dilation, shape[2:])
    y = _by_group(xp, groups, w.reshape(o, -1), cols)
    y = xp.ascontiguousarray(y.reshape((o, n) + shape[2:]).swapaxes(0, 1))
    b = tensor_bias(b)
    if b is not None:
        y += b.reshape((-1,) + (1,) * (len(shape) - 2)) if hasattr(b, "shape") else b
    return y


def _geometry(ctx):
    a = ctx.attrs
    return dict(stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                groups=a["groups"])


convolution = defop("convolution", infer=_conv_meta, grad_name="ConvolutionBackward0",
                    save=(0, 1))(_conv)


@convolution.def_backward
def _(ctx, g):
    x, w = ctx.saved
    geo = _geometry(ctx)
    gx = gw = gb = None
    if ctx.needs[0]:
        gx = g._op("conv_input_grad", g, w, input_shape=tuple(x.shape), **geo)
    if ctx.needs[1]:
        gw = g._op("conv_weight_grad", x, g, weight_shape=tuple(w.shape), **geo)
    if len(ctx.needs) > 2 and ctx.needs[2]:
        gb = g.sum((0,) + tuple(range(2, len(g.shape))))
    return (gx, gw, gb)[: len(ctx.needs)]


# -- d convolution / d input ------------------------------------------------------------------
def _input_grad_meta(g, w, *, input_shape, stride, padding, dilation, groups):
    _check_dtypes(g, w)
    expected = _conv_out_shape(tuple(input_shape), w.shape, stride, padding, dilation, groups)
    if tuple(g.shape) != expected:
        raise InvalidArgumentError(f"conv_input_grad: grad of shape {list(g.shape)}, expected "
                                   f"{list(expected)}")
    return Meta(tuple(input_shape), g.dtype)


def _input_grad(xp, g, w, *, input_shape, stride, padding, dilation, groups):
    if all(st == 1 for st in stride):
        return _input_grad_shifted(xp, g, w, tuple(input_shape), padding, dilation, groups)
    n, o = g.shape[:2]
    out = g.shape[2:]
    wt = w.reshape(groups, o // groups, -1).transpose(0, 2, 1).reshape(-1, o // groups)
    cols = _by_group(xp, groups, wt, _channels_first(xp, g))  # (C * K, N * L)
    cols = cols.reshape((input_shape[1],) + tuple(w.shape[2:]) + (n,) + tuple(out))
    return _col2im(xp, cols, tuple(input_shape), w.shape[2:], stride, padding, dilation, out)


def _input_grad_shifted(xp, g, w, input_shape, padding, dilation, groups):
    """The stride-1 input gradient without im2col's big intermediate.

    g is laid on a zero canvas the size of the padded input, flattened per channel to
    (O, N * P) with P the padded plane's size. A kernel offset k then moves every output
    position p to input position p + offset(k) in that flat layout (with stride 1 no window
    crosses a row or image edge, and canvas cells outside the output hold zeros), so each
    offset is one matmul (C/G x O/G) @ (O/G x N * P) added into a shifted slice: memory
    traffic of the size of the input, not of kernel-size times the input.
    """
    n, o = g.shape[:2]
    c = input_shape[1]
    plane = tuple(s + lo + hi for s, (lo, hi) in zip(input_shape[2:], padding, strict=True))
    strides = [math.prod(plane[i + 1:]) for i in range(len(plane))]
    canvas = xp.zeros((o, n) + plane, dtype=g.dtype)
    canvas[(slice(None), slice(None)) + tuple(slice(0, k) for k in g.shape[2:])] = \
        g.swapaxes(0, 1)
    flat = canvas.reshape(o, -1)
    size = flat.shape[1]
    kernel = w.shape[2:]
    tail = sum((k - 1) * d * st for k, d, st in zip(kernel, dilation, strides, strict=True))
    acc = xp.zeros((c, size + tail), dtype=g.dtype)
    og, cg = o // groups, c // groups
    for ks in itertools.product(*(range(k) for k in kernel)):
        off = sum(k * d * st for k, d, st in zip(ks, dilation, strides, strict=True))
        wk = w[(slice(None), slice(None)) + ks]  # (O, C/G)
        for i in range(groups):
            acc[i * cg:(i + 1) * cg, off:off + size] += \
                wk[i * og:(i + 1) * og].T @ flat[i * og:(i + 1) * og]
    full = acc[:, :size].reshape((c, n) + plane)
    crop = tuple(slice(lo, lo + s) for s, (lo, _) in zip(input_shape[2:], padding, strict=True))
    return xp.ascontiguousarray(full[(slice(None), slice(None)) + crop].swapaxes(0, 1))


conv_input_grad = defop("conv_input_grad", infer=_input_grad_meta,
                        grad_name="ConvolutionBackwardBackward0", save=(0, 1))(_input_grad)


@conv_input_grad.def_backward
def _(ctx, gg):
    g, w = ctx.saved
    geo = _geometry(ctx)
    dg = gg._op("convolution", gg, w, **geo) if ctx.needs[0] else None
    dw = gg._op("conv_weight_grad", gg, g, weight_shape=tuple(w.shape), **geo) \
        if ctx.needs[1] else None
    return dg, dw


# -- d convolution / d weight -----------------------------------------------------------------
def _weight_grad_meta(x, g, *, weight_shape, stride, padding, dilation, groups):
    _check_dtypes(x, g)
    expected = _conv_out_shape(x.shape, tuple(weight_shape), stride, padding, dilation, groups)
    if tuple(g.shape) != expected:
        raise InvalidArgumentError(f"conv_weight_grad: grad of shape {list(g.shape)}, "
                                   f"expected {list(expected)}")
    return Meta(tuple(weight_shape), x.dtype)


def _weight_grad(xp, x, g, *, weight_shape, stride, padding, dilation, groups):
    cols = _columns(xp, x, weight_shape[2:], stride, padding, dilation, g.shape[2:])
    gw = _by_group(xp, groups, _channels_first(xp, g), cols, transpose_b=True)
    return gw.reshape(tuple(weight_shape))


conv_weight_grad = defop("conv_weight_grad", infer=_weight_grad_meta,
                         grad_name="ConvolutionBackwardBackward0", save=(0, 1))(_weight_grad)


@conv_weight_grad.def_backward
def _(ctx, gw):
    x, g = ctx.saved
    geo = _geometry(ctx)
    dx = g._op("conv_input_grad", g, gw, input_shape=tuple(x.shape), **geo) \
        if ctx.needs[0] else None
    dg = x._op("convolution", x, gw, **geo) if ctx.needs[1] else None
    return dx, dg
