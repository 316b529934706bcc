"""Layers API.md section 7 adds: Conv3d, ConvTranspose1d/2d, AdaptiveMaxPool2d, Upsample,
Unfold, Fold, PixelShuffle, PixelUnshuffle, CosineSimilarity, PairwiseDistance and
Dropout2d, with torch's arguments, initialisation and reprs, over their functional forms.

    >>> up = nn.ConvTranspose2d(8, 4, 2, stride=2)
    >>> up(engine.randn(1, 8, 5, 5)).shape
    (1, 4, 10, 10)
"""

from __future__ import annotations

import math

from . import _f_similarity as FS
from . import _f_spatial as FX
from . import init
from ._conv import _ConvNd
from ._f_conv import _tuple
from ._layers import new_parameter
from ._module import Module


class Conv3d(_ConvNd):
    """3-d convolution over (N, C, D, H, W).

    >>> nn.Conv3d(1, 2, 3)
    Conv3d(1, 2, kernel_size=(3, 3, 3), stride=(1, 1, 1))
    """

    _nd = 3

    def forward(self, input):
        return self._conv_forward(input, FX.conv3d)


class _ConvTransposeNd(_ConvNd):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None, session=None) -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for '
                             f"{type(self).__name__}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, None, dtype, session)
        # torch's transposed weight: (in, out / groups, *kernel)
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        self.weight = new_parameter(self.session, *shape, dtype=dtype)
        self._parameters.move_to_end("bias")  # torch's order: weight, then bias
        self.output_padding = _tuple(output_padding, self._nd, "output_padding")
        self.transposed = True
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """torch's: kaiming_uniform_(a=sqrt(5)) on the weight (fan_in from its dim 1), the
        bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        nd = self._nd
        size = list(output_size)[-nd:]
        spatial = input.shape[-nd:]
        out = []
        for d in range(nd):
            least = ((spatial[d] - 1) * self.stride[d] - 2 * self.padding[d]
                     + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            if not least <= size[d] < least + self.stride[d]:
                raise ValueError(f"requested an output size of {size}, but valid sizes range "
                                 f"from {least} to {least + self.stride[d] - 1} (for an input "
                                 f"of {list(spatial)})")
            out.append(size[d] - least)
        return tuple(out)

    def forward(self, input, output_size=None):
        fn = FX.conv_transpose1d if self._nd == 1 else FX.conv_transpose2d
        return fn(input, self.weight, self.bias, self.stride, self.padding,
                  self._output_padding(input, output_size), self.groups, self.dilation)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        return s


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-d convolution over (N, C, L).

    >>> nn.ConvTranspose1d(2, 3, 4, stride=2)
    ConvTranspose1d(2, 3, kernel_size=(4,), stride=(2,))
    """

    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-d convolution over (N, C, H, W) (a learned upsampling).

    >>> nn.ConvTranspose2d(8, 4, 2, stride=2)(engine.randn(1, 8, 3, 3)).shape
    (1, 4, 6, 6)
    """

    _nd = 2


class AdaptiveMaxPool2d(Module):
    """Max over windows sized so the output is `output_size`.

    >>> nn.AdaptiveMaxPool2d(1)(engine.ones(2, 3, 5, 5)).shape
    (2, 3, 1, 1)
    """

    def __init__(self, output_size, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return FX.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    """Max over windows of the last dim sized so its length is `output_size`.

    >>> nn.AdaptiveMaxPool1d(2)(engine.ones(2, 3, 5)).shape
    (2, 3, 2)
    """

    def forward(self, input):
        return FX.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class Upsample(Module):
    """F.interpolate as a layer.

    >>> nn.Upsample(scale_factor=2, mode="nearest")
    Upsample(scale_factor=2.0, mode='nearest')
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None) -> None:
        super().__init__()
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) \
            else (tuple(float(f) for f in scale_factor) if scale_factor else None)
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return FX.interpolate(input, self.size, self.scale_factor, self.mode,
                              self.align_corners, self.recompute_scale_factor)

    def extra_repr(self) -> str:
        info = (f"size={self.size!r}" if self.size is not None
                else f"scale_factor={self.scale_factor!r}")
        return info + f", mode={self.mode!r}"


class Unfold(Module):
    """Sliding blocks as columns (F.unfold).

    >>> nn.Unfold(2)(engine.ones(1, 3, 4, 4)).shape
    (1, 12, 9)
    """

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def forward(self, input):
        return FX.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Module):
    """Columns summed back into an image (F.fold).

    >>> nn.Fold((3, 3), 2)(engine.ones(1, 4, 4)).shape
    (1, 1, 3, 3)
    """

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1) -> None:
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):
        return FX.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding,
                       self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}")


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r). >>> nn.PixelShuffle(2)"""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = int(upscale_factor)

    def forward(self, input):
        return FX.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H r, W r) -> (*, C r^2, H, W). >>> nn.PixelUnshuffle(2)"""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = int(downscale_factor)

    def forward(self, input):
        return FX.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class CosineSimilarity(Module):
    """F.cosine_similarity as a layer. >>> nn.CosineSimilarity(dim=1, eps=1e-8)"""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return FS.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """F.pairwise_distance as a layer. >>> nn.PairwiseDistance(p=2.0)"""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return FS.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class Dropout2d(Module):
    """Channel-wise dropout (F.dropout2d) while training. >>> nn.Dropout2d(0.2)"""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return FS.dropout2d(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
