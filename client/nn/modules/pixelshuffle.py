"""gradserve.nn.modules.pixelshuffle: as torch.nn.modules.pixelshuffle, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._spatial import PixelShuffle, PixelUnshuffle

__all__ = ["PixelShuffle", "PixelUnshuffle"]
