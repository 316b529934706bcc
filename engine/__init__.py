"""gradserve.engine: PyTorch's autograd semantics on numpy (CPU) and cupy (GPU), in-process.

    >>> from gradserve import engine
    >>> w = engine.tensor(2.0, requires_grad=True)
    >>> loss = (engine.tensor([[1., 2.], [3., 4.]]) * w).mean()
    >>> loss.backward()
    >>> w.grad
    tensor(2.5000)

Every op is registered once (see _registry.py) with its forward, backward and shape rule;
the gradserve server hosts this engine and the client reuses its shape rules. The module
functions (`engine.exp`, `engine.zeros`, ...) are torch's, and `gradserve` exports the same
objects (its factories pick the current session instead).
"""

from types import SimpleNamespace

from . import (  # noqa: F401  (register the ops)
    _commands,
    _ops_act,
    _ops_binary,
    _ops_conv,
    _ops_copy,
    _ops_embed,
    _ops_factory,
    _ops_gather,
    _ops_index,
    _ops_loss,
    _ops_math,
    _ops_nn,
    _ops_norm,
    _ops_optim,
    _ops_pool,
    _ops_reduce,
    _ops_shape,
    _ops_sort,
    _ops_stats,
    _ops_unary,
    _ops_view,
    _return_types,
)
from ._api import TensorAPI, cat, matmul, stack, where
from ._autograd_functional import functional as _functional
from ._backend import canonical_device, cuda_device_count
from ._defaults import (
    get_default_device,
    get_default_dtype,
    set_default_device,
    set_default_dtype,
)
from ._device import device
from ._dtype import (
    DType,
    as_dtype,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    promote,
    result_type,
    uint8,
)
from ._errors import (
    AutogradError,
    DeviceUnavailableError,
    GradserveError,
    InvalidArgumentError,
    TensorIndexError,
)
from ._factories import ENGINE as _ENGINE
from ._factories import factory_names as _factory_names
from ._function import Function, FunctionCtx
from ._functions import FUNCTIONS as _FUNCTIONS
from ._grad_api import backward as _backward
from ._grad_api import grad as _grad
from ._grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from ._meta import AutogradMeta
from ._random import Generator, manual_seed, using_generator
from ._registry import OPS, Meta, get_op
from ._size import Size
from ._tensor import Tensor

bool = bool_  # noqa: A001  (torch spells it torch.bool)
# torch's other names for the dtypes
half, float, double = float16, float32, float64  # noqa: A001
short, int, long = int16, int32, int64  # noqa: A001
return_types = _return_types
autograd = SimpleNamespace(grad=_grad, backward=_backward, Function=Function,
                           function=SimpleNamespace(FunctionCtx=FunctionCtx),
                           functional=_functional)


def promote_types(type1, type2) -> DType:
    """torch.promote_types: the dtype both promote to."""
    return promote(as_dtype(type1), as_dtype(type2))


def can_cast(from_, to) -> bool:  # noqa: A002
    """torch.can_cast: whether an in-place op may write a `from_` result into `to`."""
    from ._dtype import can_cast as _can_cast

    return _can_cast(as_dtype(from_), as_dtype(to))


# factories (torch.zeros, ...) and module functions (torch.exp, ...)
for _name in _factory_names():
    globals()[_name] = getattr(_ENGINE, _name)
globals().update(_FUNCTIONS)

cuda = SimpleNamespace(is_available=lambda: cuda_device_count() > 0,
                       device_count=cuda_device_count)

__all__ = [
    "OPS", "AutogradError", "AutogradMeta", "DType", "DeviceUnavailableError", "Function",
    "Generator",
    "GradserveError", "InvalidArgumentError", "Meta", "Tensor", "TensorAPI",
    "TensorIndexError", "as_dtype", "autograd", "bool", "can_cast", "canonical_device", "cat",
    "cuda", "cuda_device_count", "device", "double", "enable_grad", "float", "float16",
    "float32", "float64", "get_op", "half", "inference_mode", "int", "int8", "int16", "int32",
    "int64", "is_grad_enabled", "is_inference_mode_enabled", "long", "manual_seed", "matmul",
    "no_grad", "promote_types", "result_type", "return_types", "set_grad_enabled", "short",
    "stack", "uint8", "using_generator", "where", *_factory_names(), *_FUNCTIONS,
    "Size", "get_default_device", "get_default_dtype", "set_default_device",
    "set_default_dtype",
]
