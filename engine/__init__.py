"""gradserve.engine: PyTorch's autograd semantics on numpy (CPU) and cupy (GPU), in-process.

    >>> from gradserve import engine
    >>> w = engine.tensor(2.0, requires_grad=True)
    >>> loss = (engine.tensor([[1., 2.], [3., 4.]]) * w).mean()
    >>> loss.backward()
    >>> w.grad
    tensor(2.5000)

Every op is registered once (see _registry.py) with its forward, backward and shape rule;
the gradserve server hosts this engine and the client reuses its shape rules.
"""

from types import SimpleNamespace

from . import (  # noqa: F401  (register the ops)
    _commands,
    _ops_act,
    _ops_conv,
    _ops_copy,
    _ops_embed,
    _ops_factory,
    _ops_index,
    _ops_loss,
    _ops_math,
    _ops_nn,
    _ops_norm,
    _ops_optim,
    _ops_pool,
    _ops_reduce,
    _ops_shape,
)
from ._api import TensorAPI, cat, matmul, stack, where
from ._backend import canonical_device, cuda_device_count
from ._dtype import DType, as_dtype, bool_, float32, float64, int64
from ._errors import AutogradError, GradserveError, InvalidArgumentError, TensorIndexError
from ._factories import (
    arange,
    empty,
    eye,
    from_numpy,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from ._grad_api import backward as _backward
from ._grad_api import grad as _grad
from ._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ._meta import AutogradMeta
from ._random import Generator, manual_seed, using_generator
from ._registry import OPS, Meta, get_op
from ._tensor import Tensor

bool = bool_  # noqa: A001  (torch spells it torch.bool)
autograd = SimpleNamespace(grad=_grad, backward=_backward)

__all__ = [
    "OPS", "AutogradError", "AutogradMeta", "DType", "Generator", "GradserveError",
    "InvalidArgumentError", "Meta", "Tensor", "TensorAPI", "TensorIndexError", "arange",
    "as_dtype", "autograd", "bool",
    "canonical_device", "cat", "cuda_device_count", "empty", "enable_grad", "eye", "float32",
    "float64", "from_numpy", "full", "full_like", "get_op", "int64", "is_grad_enabled",
    "manual_seed", "matmul", "no_grad", "ones", "ones_like", "rand", "rand_like", "randn",
    "randn_like", "set_grad_enabled", "stack", "tensor", "using_generator", "where", "zeros",
    "zeros_like",
]
