"""gradserve.nn.modules.conv: as torch.nn.modules.conv, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._conv import Conv1d, Conv2d
from .._spatial import Conv3d, ConvTranspose1d, ConvTranspose2d

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d"]
