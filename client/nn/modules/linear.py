"""gradserve.nn.modules.linear: as torch.nn.modules.linear, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._layers import Identity, Linear
from .._params import Bilinear

__all__ = ["Bilinear", "Identity", "Linear"]
