"""gradserve.nn.modules.normalization: as torch.nn.modules.normalization, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._norm import GroupNorm, LayerNorm

__all__ = ["GroupNorm", "LayerNorm"]
