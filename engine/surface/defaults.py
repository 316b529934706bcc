"""torch's process-wide defaults: the floating dtype of new tensors and where factories put
them (`set_default_dtype`, `get_default_dtype`, `set_default_device`, `get_default_device`).

    >>> from gradserve import engine
    >>> engine.set_default_dtype(engine.float64)
    >>> engine.tensor([1.5]).dtype, engine.zeros(1).dtype, engine.get_default_dtype()
    (gradserve.float64, gradserve.float64, gradserve.float64)
    >>> engine.set_default_dtype(engine.float32)
"""

from __future__ import annotations

from ..core import dtype as _dtype
from ..core.backend import canonical_device
from ..core.device import device as _device
from ..core.dtype import DType
from . import factories as _factories


def set_default_dtype(d) -> None:
    """The dtype of new floating tensors (factories, `tensor([1.5])`, an integer tensor
    combined with a Python float): float32 (the default) or float64, as torch."""
    if not isinstance(d, DType):
        raise TypeError("invalid dtype object: only floating-point types are supported as the "
                        "default type")
    if not d.is_floating_point:
        raise TypeError("only floating-point types are supported as the default type")
    _dtype.default_float = d


# The dtype of new floating tensors (see set_default_dtype): a server session's own while its
# ops run (its client's, sent as a session setting), else the process's. The rule itself, not
# a function calling it: the client asks on every op it records.
get_default_dtype = _dtype.default_float_dtype


def set_default_device(device) -> None:
    """Where factories put tensors when no `device=` is given: "cpu", "cuda", "cuda:1", a
    `device`, or None for each maker's own (the engine: cpu; a session: its device)."""
    _factories.default_device[0] = None if device is None else canonical_device(device)


def get_default_device() -> _device:
    """Where factories put tensors with no `device=` (cpu unless set)."""
    return _device(_factories.default_device[0] or "cpu")


__all__ = ["get_default_device", "get_default_dtype", "set_default_device",
           "set_default_dtype"]
