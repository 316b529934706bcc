"""gradserve.nn.modules.upsampling: as torch.nn.modules.upsampling, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._spatial import Upsample

__all__ = ["Upsample"]
