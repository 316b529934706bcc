"""gradserve.nn.modules.module: as torch.nn.modules.module, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._module import Module

__all__ = ["Module"]
