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


# both tensor kinds raise this, whichever operand comes first (never a silent download)
MIXED_KINDS = (
    "a RemoteTensor can't be combined with an in-process Tensor; create it on the session "
    "(s.tensor(...)) or fetch the remote one (.numpy())"
)

# torch's closing sentence of the in-place version error (anomaly mode off)
VERSION_HINT = (
    " Hint: enable anomaly detection to find the operation that failed to compute its "
    "gradient, with gradserve.autograd.set_detect_anomaly(True, check_nan=False)."
)
