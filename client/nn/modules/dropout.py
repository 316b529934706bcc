"""gradserve.nn.modules.dropout: as torch.nn.modules.dropout, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._layers import Dropout
from .._spatial import Dropout2d

__all__ = ["Dropout", "Dropout2d"]
