"""gradserve.nn.modules.flatten: as torch.nn.modules.flatten, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._layers import Flatten

__all__ = ["Flatten"]
