"""gradserve.nn.modules.container: as torch.nn.modules.container, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._containers import ModuleDict, ModuleList
from .._layers import Sequential
from .._params import ParameterDict, ParameterList

__all__ = ["ModuleDict", "ModuleList", "ParameterDict", "ParameterList", "Sequential"]
