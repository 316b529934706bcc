"""What gs.compile(module) returns, as torch.compile does: the module under `_orig_mod`."""

from __future__ import annotations

from .._compile import whole_batches
from ._module import Module


class OptimizedModule(Module):
    """`module` under `_orig_mod` (its state dict keys prefixed so, as torch's), its calls
    keeping their recorded steps whole (see gradserve._compile); other attributes are the
    original module's."""

    def __init__(self, mod: Module) -> None:
        super().__init__()
        self._orig_mod = mod

    def forward(self, *args, **kwargs):
        with whole_batches():
            return self._orig_mod(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["_orig_mod"], name)


__all__ = ["Module", "OptimizedModule"]
