"""gradserve.nn.modules.pooling: as torch.nn.modules.pooling, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._conv import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .._spatial import AdaptiveMaxPool1d, AdaptiveMaxPool2d

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AvgPool1d",
    "AvgPool2d", "MaxPool1d", "MaxPool2d"]
