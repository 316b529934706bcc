"""Functional convolution, pooling and padding (re-exported by gradserve.nn.functional).

Each function normalises torch's arguments (ints or tuples, "same"/"valid", unbatched input)
and sends one registry op, so a remote call is one op on the wire.
"""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError


def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise InvalidArgumentError(f"expected {name} to be a single integer value or a list of "
                                   f"{n} values to match the convolution dimensions, but got "
                                   f"{name}={list(value)}")
    return value


def _batched(input, nd: int, name: str):
    """(input with a batch dim, whether one was added): torch accepts unbatched input."""
    if input.dim() == nd + 1:
        return input.unsqueeze(0), True
    if input.dim() != nd + 2:
        raise InvalidArgumentError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input "
                                   f"to {name}, but got input of size: {list(input.shape)}")
    return input, False


def _unbatched(input, nd: int, name: str) -> bool:
    """Whether input is unbatched (C, *S); torch's error for neither form. Pooling ops take
    either form as torch's kernels do (no unsqueeze/squeeze around them)."""
    if input.dim() not in (nd + 1, nd + 2):
        raise InvalidArgumentError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input "
                                   f"to {name}, but got input of size: {list(input.shape)}")
    return input.dim() == nd + 1


def conv_padding(padding, kernel, dilation, stride) -> tuple[tuple[int, int], ...]:
    """torch's padding argument as (lo, hi) per dim; "same" pads the extra one on the right."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding != "same":
            raise InvalidArgumentError(f"Invalid padding string {padding!r}, should be one of "
                                       "('valid', 'same')")
        if any(s != 1 for s in stride):
            raise InvalidArgumentError("padding='same' is not supported for strided "
                                       "convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        return tuple((t // 2, t - t // 2) for t in total)
    return tuple((p, p) for p in _tuple(padding, nd, "padding"))


def _conv(nd, input, weight, bias, stride, padding, dilation, groups):
    x, added = _batched(input, nd, f"conv{nd}d")
    kernel = tuple(weight.shape[2:])
    stride = _tuple(stride, nd, "stride")
    dilation = _tuple(dilation, nd, "dilation")
    pads = conv_padding(padding, kernel, dilation, stride)
    operands = (x, weight, 0 if bias is None else bias)  # 0: torch's None edge for no bias
    y = x._op("convolution", *operands, stride=stride, padding=pads, dilation=dilation,
              groups=int(groups))
    return y.squeeze(0) if added else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d convolution (cross-correlation) of (N, C, L) with weight (O, C/groups, K).

    >>> F.conv1d(engine.ones(1, 1, 4), engine.ones(1, 1, 2))
    tensor([[[2., 2., 2.]]])
    """
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution of (N, C, H, W) with weight (O, C/groups, kH, kW); padding may be an
    int, a pair, "valid" or "same".

    >>> F.conv2d(engine.ones(1, 1, 3, 3), engine.ones(1, 1, 2, 2), padding="same").shape
    gradserve.Size([1, 1, 3, 3])
    """
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def _pool_args(nd, kernel_size, stride, padding, dilation):
    kernel = _tuple(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _tuple(stride, nd, "stride")
    return kernel, stride, _tuple(padding, nd, "padding"), _tuple(dilation, nd, "dilation")


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    spatial = {"spatial": nd} if _unbatched(input, nd, f"max_pool{nd}d") else {}
    kernel, stride, padding, dilation = _pool_args(nd, kernel_size, stride, padding, dilation)
    indices = input._op("max_pool_indices", input, kernel=kernel, stride=stride,
                        padding=padding, dilation=dilation, ceil_mode=bool(ceil_mode))
    out = input._op("max_pool", input, indices, **spatial)
    return (out, indices) if return_indices else out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over sliding windows of (N, C, L).

    >>> F.max_pool1d(engine.tensor([[[1., 3., 2., 0.]]]), 2)
    tensor([[[3., 2.]]])
    """
    _unbatched(input, 1, "max_pool1d")  # torch's error for other shapes
    # torch's composition: a 2-d pool over a height of 1 (its grad_fn and indices)
    kernel, stride, padding, dilation = _pool_args(1, kernel_size, stride, padding, dilation)
    out = _max_pool(2, input.unsqueeze(-2), (1,) + kernel, (1,) + stride, (0,) + padding,
                    (1,) + dilation, ceil_mode, True)
    values, indices = out[0].squeeze(-2), out[1].squeeze(-2)
    return (values, indices) if return_indices else values


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over sliding windows of (N, C, H, W); stride defaults to the kernel size.
    With return_indices, also the flat index of each maximum in its input plane.

    >>> F.max_pool2d(engine.arange(16.).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    _unbatched(input, nd, f"avg_pool{nd}d")
    kernel, stride, padding, _ = _pool_args(nd, kernel_size, stride, padding, 1)
    return input._op("avg_pool", input, kernel=kernel, stride=stride, padding=padding,
                     ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                     divisor_override=None if divisor_override is None
                     else int(divisor_override))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Mean over sliding windows of (N, C, L).

    >>> F.avg_pool1d(engine.tensor([[[1., 3., 2., 0.]]]), 2)
    tensor([[[2., 1.]]])
    """
    _unbatched(input, 1, "avg_pool1d")  # torch's error for other shapes
    kernel, stride, padding, _ = _pool_args(1, kernel_size, stride, padding, 1)
    # torch's composition: a 2-d pool over a height of 1
    return _avg_pool(2, input.unsqueeze(-2), (1,) + kernel, (1,) + stride, (0,) + padding,
                     ceil_mode, count_include_pad, None).squeeze(-2)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over sliding windows of (N, C, H, W).

    >>> F.avg_pool2d(engine.ones(1, 1, 4, 4), 2).shape
    gradserve.Size([1, 1, 2, 2])
    """
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def adaptive_avg_pool2d(input, output_size):
    """Mean over windows chosen so that the output is `output_size` (None keeps a size).

    Like torch, an output of 1x1 is a plain mean over the last two dims.

    >>> F.adaptive_avg_pool2d(engine.arange(16.).reshape(1, 1, 4, 4), 1)
    tensor([[[[7.5000]]]])
    """
    _unbatched(input, 2, "adaptive_avg_pool2d")
    x = input
    wanted = (output_size,) * 2 if isinstance(output_size, int) else tuple(output_size)
    if len(wanted) != 2:
        raise InvalidArgumentError(f"adaptive_avg_pool2d: output_size must be 2, got {wanted}")
    size = tuple(x.shape[x.dim() - 2 + i] if o is None else int(o)
                 for i, o in enumerate(wanted))
    if size == (1, 1):
        return x.mean((-2, -1), keepdim=True)
    return x._op("adaptive_avg_pool", x, output_size=size)


def pad(input, pad, mode: str = "constant", value=None):
    """Pad the last len(pad) // 2 dims; `pad` lists (left, right) from the last dim inwards.
    Modes: constant (negative amounts crop), reflect, replicate, circular.

    >>> F.pad(engine.ones(1, 2), (1, 1))
    tensor([[0., 1., 1., 0.]])
    """
    if mode != "constant" and value is not None and value != 0:
        raise InvalidArgumentError(f"Padding mode \"{mode}\" doesn't take in value argument.")
    return input._op("pad", input, pad=tuple(int(p) for p in pad), mode=mode,
                     value=float(value or 0.0))
