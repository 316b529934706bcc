"""The engine's typed errors.

Every gradserve error derives from `GradserveError`. The server maps each class to one gRPC
status code (server/_status.py) and the client maps the code back, so a user sees the same
class whether the tensor lives in-process or on a server.
"""

from __future__ import annotations


class GradserveError(Exception):
    """Base of every error gradserve raises."""


class AutogradError(GradserveError, RuntimeError):
    """An autograd rule was broken (graph freed, in-place change, leaf misuse, ...).

    Also a RuntimeError, so code written for torch's errors catches it.
    """


class InvalidArgumentError(AutogradError):
    """An op got arguments it cannot take: shape, dtype, arity, unknown op or device."""


class TensorIndexError(InvalidArgumentError, IndexError):
    """An index is out of range for the dimension it indexes."""


class DeviceUnavailableError(AutogradError):
    """A device that is not there: no cupy, a GPU ordinal past those visible, or a device the
    server does not serve. A RuntimeError, as torch's "CUDA error: invalid device ordinal"."""


class KernelNotImplementedError(InvalidArgumentError, NotImplementedError):
    """An op has no kernel for this dtype: torch raises NotImplementedError there."""
