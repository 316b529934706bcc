"""gradserve: remote autograd through proxy tensors that behave like torch.Tensor.

    >>> import gradserve as gs
    >>> client = gs.connect("127.0.0.1:50051")
    >>> with client.session(device="cpu") as s:
    ...     x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    ...     w = s.tensor(2.0, requires_grad=True)
    ...     loss = (x * w).mean()
    ...     loss.backward()
    ...     w.grad.item()
    2.5

Building a graph costs no round trip: ids, shapes, dtypes and grad_fn names are worked out
locally with the engine's own rules, and ops travel in batches. Only calls that need values
(`item`, `numpy`, `tolist`, `repr`, `backward`, `gs.autograd.grad`, `s.fetch`) wait.

`import gradserve` stays light: grpc and protobuf load on the first `connect`, so
`import gradserve.engine` (the same tensor API in-process) never pulls them in.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

from . import _autograd
from ._checkpoint import CheckpointError, load, save
from ._errors import (
    AutogradError,
    ConnectionError,
    GradserveError,
    InvalidArgumentError,
    PermissionError,
    ResourceExhaustedError,
    SessionLostError,
    TensorIndexError,
)
from ._tensor import RemoteAccumulateGrad, RemoteNode, RemoteTensor
from .engine import (
    DType,
    cat,
    enable_grad,
    float32,
    float64,
    int64,
    is_grad_enabled,
    matmul,
    no_grad,
    set_grad_enabled,
    stack,
    where,
)
from .engine import bool_ as bool  # noqa: A001  (torch spells it torch.bool)

autograd = SimpleNamespace(grad=_autograd.grad, backward=_autograd.backward)

__all__ = [
    "AutogradError", "CheckpointError", "Client", "ConnectionError", "DType", "GradserveError",
    "InvalidArgumentError", "PermissionError", "RemoteAccumulateGrad", "RemoteNode",
    "RemoteTensor", "ResourceExhaustedError", "Session", "SessionLostError", "TensorIndexError",
    "autograd", "bool", "cat", "connect", "enable_grad", "engine", "float32", "float64", "int64",
    "is_grad_enabled", "load", "matmul", "nn", "no_grad", "optim", "save", "set_grad_enabled",
    "stack", "viz", "where",
]


def connect(target: str = "127.0.0.1:50051", *, token: str | None = None, tls=None,
            timeout: float | None = 5.0, options: list | None = None):
    """Open a connection to a gradserve server; raises gs.ConnectionError if none answers.

    >>> client = gs.connect("127.0.0.1:50051", token=None, timeout=5.0)
    >>> s = client.session()
    """
    from ._client import connect as _connect

    return _connect(target, token=token, tls=tls, timeout=timeout, options=options)


_LAZY = {"Client": "._client", "Session": "._session"}
_SUBMODULES = ("engine", "nn", "optim", "viz")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _SUBMODULES:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ImportError as e:  # gradserve.nn / gradserve.optim may not be installed yet
            raise AttributeError(f"module 'gradserve' has no attribute {name!r} ({e})") from e
    raise AttributeError(f"module 'gradserve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
