"""gradserve.engine: PyTorch's autograd semantics on numpy (CPU) and cupy (GPU), in-process.

    >>> from gradserve import engine
    >>> w = engine.tensor(2.0, requires_grad=True)
    >>> loss = (engine.tensor([[1., 2.], [3., 4.]]) * w).mean()
    >>> loss.backward()
    >>> w.grad
    tensor(2.5000)

Every op is registered once (see core/registry.py) with its forward, backward and shape rule;
the gradserve server hosts this engine and the client reuses its shape rules. The module
functions (`engine.exp`, `engine.zeros`, ...) are torch's, and `gradserve` exports the same
objects (its factories pick the current session instead).
"""

from types import SimpleNamespace

from .core.anomaly import (
    detect_anomaly,
    is_anomaly_check_nan_enabled,
    is_anomaly_enabled,
    set_anomaly_enabled,
    set_detect_anomaly,
)
from .core.backend import canonical_device, cuda_device_count
from .core.device import device
from .core.dtype import (
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
from .core.dtype import can_cast as _can_cast
from .core.errors import (
    AutogradError,
    DeviceUnavailableError,
    GradserveError,
    InvalidArgumentError,
    TensorIndexError,
)
from .core.function import Function, FunctionCtx
from .core.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .core.memory import keep_freed_memory as _keep_freed_memory
from .core.meta import AutogradMeta
from .core.random import Generator, manual_seed, using_generator
from .core.registry import OPS, Meta, get_op
from .core.size import Size
from .ops import anomaly as _anomaly_ops  # noqa: F401  (registers its ops)
from .ops import commands as _commands  # noqa: F401  (registers its ops)
from .ops import factories as _factories  # noqa: F401  (registers its ops)
from .ops import optim as _optim  # noqa: F401  (registers its ops)
from .ops import random as _random_ops  # noqa: F401  (registers its ops)
from .ops.elementwise import activations as _activations  # noqa: F401  (registers its ops)
from .ops.elementwise import arithmetic as _arithmetic  # noqa: F401  (registers its ops)
from .ops.elementwise import binary as _binary  # noqa: F401  (registers its ops)
from .ops.elementwise import copies as _copies  # noqa: F401  (registers its ops)
from .ops.elementwise import extra as _extra  # noqa: F401  (registers its ops)
from .ops.elementwise import hard as _hard  # noqa: F401  (registers its ops)
from .ops.elementwise import overloads as _overloads  # noqa: F401  (registers its ops)
from .ops.elementwise import shrink as _shrink  # noqa: F401  (registers its ops)
from .ops.elementwise import unary as _unary  # noqa: F401  (registers its ops)
from .ops.indexing import gather as _gather  # noqa: F401  (registers its ops)
from .ops.indexing import getitem as _getitem  # noqa: F401  (registers its ops)
from .ops.linalg import decompositions as _decompositions  # noqa: F401  (registers its ops)
from .ops.linalg import distance as _distance  # noqa: F401  (registers its ops)
from .ops.linalg import lstsq as _lstsq  # noqa: F401  (registers its ops)
from .ops.linalg import matmul as _matmul_op  # noqa: F401  (registers its ops)
from .ops.linalg import pinv as _pinv  # noqa: F401  (registers its ops)
from .ops.linalg import products as _products  # noqa: F401  (registers its ops)
from .ops.linalg import qr as _qr  # noqa: F401  (registers its ops)
from .ops.linalg import solve_right as _solve_right  # noqa: F401  (registers its ops)
from .ops.nn import attention as _attention  # noqa: F401  (registers its ops)
from .ops.nn import conv as _conv  # noqa: F401  (registers its ops)
from .ops.nn import conv_transpose as _conv_transpose  # noqa: F401  (registers its ops)
from .ops.nn import embedding as _embedding  # noqa: F401  (registers its ops)
from .ops.nn import fused as _fused  # noqa: F401  (registers its ops)
from .ops.nn import losses as _losses  # noqa: F401  (registers its ops)
from .ops.nn import margin_losses as _margin_losses  # noqa: F401  (registers its ops)
from .ops.nn import norm as _norm  # noqa: F401  (registers its ops)
from .ops.nn import packing as _packing  # noqa: F401  (registers its ops)
from .ops.nn import pool as _pool  # noqa: F401  (registers its ops)
from .ops.nn import pool_adaptive as _pool_adaptive  # noqa: F401  (registers its ops)
from .ops.nn import prelu as _prelu  # noqa: F401  (registers its ops)
from .ops.nn import resample as _resample  # noqa: F401  (registers its ops)
from .ops.nn import rrelu as _rrelu  # noqa: F401  (registers its ops)
from .ops.nn import trilinear as _trilinear  # noqa: F401  (registers its ops)
from .ops.reductions import moments as _moments  # noqa: F401  (registers its ops)
from .ops.reductions import reduce as _reduce  # noqa: F401  (registers its ops)
from .ops.reductions import scans as _scans  # noqa: F401  (registers its ops)
from .ops.reductions import sort as _sort  # noqa: F401  (registers its ops)
from .ops.reductions import stats as _stats  # noqa: F401  (registers its ops)
from .ops.shape import rearrange as _rearrange  # noqa: F401  (registers its ops)
from .ops.shape import views as _views  # noqa: F401  (registers its ops)
from .surface import linalg
from .surface import return_types as _return_types
from .surface.defaults import (
    get_default_device,
    get_default_dtype,
    set_default_device,
    set_default_dtype,
)
from .surface.factories import factory_names as _factory_names
from .surface.functional import functional as _functional
from .surface.functions import FUNCTIONS as _FUNCTIONS
from .surface.grad_api import backward as _backward
from .surface.grad_api import grad as _grad
from .surface.products import cdist
from .surface.tensor import ENGINE as _ENGINE
from .surface.tensor import Tensor
from .surface.tensor_api import TensorAPI, cat, matmul, stack, where

bool = bool_  # noqa: A001  (torch spells it torch.bool)
# torch's other names for the dtypes
half, float, double = float16, float32, float64  # noqa: A001
short, int, long = int16, int32, int64  # noqa: A001
return_types = _return_types
autograd = SimpleNamespace(grad=_grad, backward=_backward, Function=Function,
                           function=SimpleNamespace(FunctionCtx=FunctionCtx),
                           functional=_functional, detect_anomaly=detect_anomaly,
                           set_detect_anomaly=set_detect_anomaly)


def promote_types(type1, type2) -> DType:
    """torch.promote_types: the dtype both promote to."""
    return promote(as_dtype(type1), as_dtype(type2))


def can_cast(from_, to) -> bool:  # noqa: A002
    """torch.can_cast: whether an in-place op may write a `from_` result into `to`."""
    return _can_cast(as_dtype(from_), as_dtype(to))


# factories (torch.zeros, ...) and module functions (torch.exp, ...)
for _name in _factory_names():
    globals()[_name] = getattr(_ENGINE, _name)
globals().update(_FUNCTIONS)

# arrays freed by one step are reused by the next instead of faulting pages back in
# (core/memory.py says what is set and when it is left alone)
_keep_freed_memory()

cuda = SimpleNamespace(is_available=lambda: cuda_device_count() > 0,
                       device_count=cuda_device_count)

__all__ = [
    "cdist", "linalg",
    "detect_anomaly", "is_anomaly_check_nan_enabled", "is_anomaly_enabled",
    "set_anomaly_enabled", "set_detect_anomaly",
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
