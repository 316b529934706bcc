"""gradserve.nn.modules.sparse: as torch.nn.modules.sparse, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._norm import Embedding

__all__ = ["Embedding"]
