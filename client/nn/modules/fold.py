"""gradserve.nn.modules.fold: as torch.nn.modules.fold, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._spatial import Fold, Unfold

__all__ = ["Fold", "Unfold"]
