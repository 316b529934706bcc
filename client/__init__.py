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
(`item`, `numpy`, `tolist`, `repr`, `s.fetch`), shapes that depend on values (`x[mask]`,
`nonzero`, ...) and backwards through hooks or custom Functions (whose Python runs here)
wait. The module level is torch's: `gs.zeros`, `gs.exp`, `gs.float16`, ...; its factories
make tensors on the current session (`with client.session() as s:`, `with gs.use(s):`), or
in-process when there is none.

`import gradserve` stays light: grpc and protobuf load on the first `connect`, so
`import gradserve.engine` (the same tensor API in-process) never pulls them in.
"""

from __future__ import annotations

import importlib

from . import autograd, backends, cuda, utils
from ._checkpoint import CheckpointError, load, save
from ._compile import compile  # noqa: A004  (torch.compile's name)
from ._current import current_session, use
from ._errors import (
    AutogradError,
    ConnectionError,
    DeadlineExceededError,
    DeviceUnavailableError,
    GradserveError,
    InvalidArgumentError,
    PermissionError,
    ResourceExhaustedError,
    SessionLostError,
    TensorIndexError,
)
from ._legacy import (
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
    Tensor,
)
from ._surface import FACTORIES as _FACTORIES
from ._tensor import RemoteTensor
from .engine import (
    DType,
    Function,
    Size,
    can_cast,
    cat,
    cdist,
    device,
    double,
    enable_grad,
    float16,
    float32,
    float64,
    get_default_device,
    get_default_dtype,
    half,
    inference_mode,
    int8,
    int16,
    int32,
    int64,
    is_anomaly_check_nan_enabled,
    is_anomaly_enabled,
    is_grad_enabled,
    is_inference_mode_enabled,
    long,
    matmul,
    no_grad,
    promote_types,
    result_type,
    return_types,
    set_anomaly_enabled,
    set_default_device,
    set_default_dtype,
    set_grad_enabled,
    short,
    stack,
    uint8,
    where,
)
from .engine import bool_ as bool  # noqa: A001  (torch spells it torch.bool)
from .engine import float as float  # noqa: A001, PLC0414
from .engine import int as int  # noqa: A001, PLC0414
from .engine.seam import FUNCTIONS as _FUNCTIONS
from .engine.seam import Generator

__all__ = [
    "__version__", "AutogradError", "CheckpointError", "Client", "ConnectionError", "DType",
    "DeadlineExceededError",
    "DeviceUnavailableError", "Function", "Generator", "GradserveError", "InvalidArgumentError",
    "PermissionError", "RemoteTensor", "ResourceExhaustedError", "Session", "SessionLostError",
    "Tensor", "TensorIndexError",
    "compile",
    "autograd", "backends", "bool", "can_cast", "cat", "connect", "cuda", "current_session",
    "device",
    "double", "enable_grad", "engine", "float", "float16", "float32", "float64", "half",
    "inference_mode", "int", "int8", "int16", "int32", "int64", "is_grad_enabled",
    "is_inference_mode_enabled", "load", "long", "matmul", "nn", "no_grad", "optim",
    "promote_types", "result_type", "return_types", "save", "set_grad_enabled", "short",
    "stack", "uint8", "use", "utils", "viz", "where", *_FACTORIES, *_FUNCTIONS,
    "BoolTensor", "ByteTensor", "CharTensor", "DoubleTensor", "FloatTensor", "HalfTensor",
    "IntTensor", "LongTensor", "ShortTensor", "Size", "get_default_device",
    "get_default_dtype", "set_default_device", "set_default_dtype",
    "cdist", "linalg",
    "is_anomaly_check_nan_enabled", "is_anomaly_enabled", "set_anomaly_enabled",
]


def connect(target: str = "127.0.0.1:50051", *, token: str | None = None, tls=None,
            timeout: float | None = 10.0, options: list | None = None,
            route_header: str | None = "x-gradserve-route"):
    """Open a connection to a gradserve server; raises gs.ConnectionError if none answers.

    `target`: "host:port" or a gRPC name ("dns:///host:port", "unix:/path"); anything else
    raises at once (reason "bad_target"). `timeout` bounds every wait on the server: a call
    during which it says nothing for that long and answers no health probe raises
    gs.ConnectionError (reason "unresponsive"); a refused connection raises at once
    (reason "unreachable"); None waits forever.
    `route_header`: the header a session-pinning proxy (deploy/envoy) names replicas in.

    >>> client = gs.connect("127.0.0.1:50051", token=None, timeout=5.0)
    >>> s = client.session()
    """
    # grpc loads on the first connect, so `import gradserve` stays light (engine use only)
    from ._client import connect as _connect

    return _connect(target, token=token, tls=tls, timeout=timeout, options=options,
                    route_header=route_header)


def _version() -> str:
    # The installed distribution's metadata is the one source (pyproject.toml's version);
    # a source tree used without installing has none.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradserve")
    except PackageNotFoundError:
        return "0+unknown"


_LAZY = {"Client": "._client", "Session": "._session"}
_SUBMODULES = ("engine", "linalg", "nn", "optim", "viz")


def __getattr__(name: str):
    if name == "__version__":
        return _version()
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


# torch's module functions (gs.exp, gs.max, ...: the engine's, for either tensor kind) and
# factories that use the current session; last, as some shadow builtins in this module
globals().update(_FUNCTIONS)
globals().update(_FACTORIES)
