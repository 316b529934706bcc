"""Convolution and pooling layers."""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError

from .._default import default_session
from . import functional as F
from . import init
from ._f_conv import _tuple, conv_padding
from ._layers import new_parameter
from ._module import Module

_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    _nd = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None, session=None) -> None:
        super().__init__()
        nd = self._nd
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"padding_mode must be one of {list(_PAD_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _tuple(kernel_size, nd, "kernel_size")
        self.stride = _tuple(stride, nd, "stride")
        self.dilation = _tuple(dilation, nd, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 "['valid', 'same']")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _tuple(padding, nd, "padding")
        self.groups, self.padding_mode = int(groups), padding_mode
        self.output_padding = (0,) * nd
        self.transposed = False
        self.session = default_session(session)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = new_parameter(self.session, *shape, dtype=dtype)
        if bias:
            self.bias = new_parameter(self.session, self.out_channels, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """torch's initialisation: kaiming_uniform_(a=sqrt(5)) for the weight, and the bias
        from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). >>> conv.reset_parameters()"""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _conv_forward(self, input, conv):
        if self.padding_mode == "zeros":
            return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)
        pad = self._explicit_padding()
        padded = F.pad(input, pad, mode=self.padding_mode)
        return conv(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _explicit_padding(self) -> tuple[int, ...]:
        pairs = conv_padding(self.padding, self.kernel_size, self.dilation, self.stride)
        return tuple(v for lo, hi in reversed(pairs) for v in (lo, hi))

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-d convolution over (N, C, L) with torch's arguments and initialisation.

    >>> nn.Conv1d(4, 8, 3, padding=1)
    Conv1d(4, 8, kernel_size=(3,), stride=(1,), padding=(1,))
    """

    _nd = 1

    def forward(self, input):
        return self._conv_forward(input, F.conv1d)


class Conv2d(_ConvNd):
    """2-d convolution over (N, C, H, W): stride, padding (int, pair, "same", "valid"),
    dilation, groups, bias and padding_mode as torch's.

    >>> conv = nn.Conv2d(1, 8, 3, padding=1)
    >>> conv(engine.randn(2, 1, 8, 8)).shape
    gradserve.Size([2, 8, 8, 8])
    """

    _nd = 2

    def forward(self, input):
        return self._conv_forward(input, F.conv2d)


class _PoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding


class MaxPool1d(_PoolNd):
    """Max over windows of (N, C, L). >>> nn.MaxPool1d(2)
    MaxPool1d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding)
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input):
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool2d(MaxPool1d):
    """Max over windows of (N, C, H, W); stride defaults to kernel_size.

    >>> nn.MaxPool2d(2)
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class AvgPool1d(_PoolNd):
    """Mean over windows of (N, C, L). >>> nn.AvgPool1d(2)
    AvgPool1d(kernel_size=(2,), stride=(2,), padding=(0,))
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__(_tuple(kernel_size, 1, "kernel_size"),
                         None if stride is None else _tuple(stride, 1, "stride"),
                         _tuple(padding, 1, "padding"))
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_PoolNd):
    """Mean over windows of (N, C, H, W). >>> nn.AvgPool2d(2)
    AvgPool2d(kernel_size=2, stride=2, padding=0)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None) -> None:
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Mean over windows sized so the output is `output_size`.

    >>> nn.AdaptiveAvgPool2d((1, 1))(engine.ones(2, 3, 5, 5)).shape
    gradserve.Size([2, 3, 1, 1])
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        if isinstance(output_size, (list, tuple)) and len(output_size) != 2:
            raise InvalidArgumentError("adaptive_avg_pool2d: output_size must be 2")
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
