"""The module functions (`torch.exp(x)`, `torch.max(x, 1)`, `torch.zeros_like(x)`, ...):
each mirrors the tensor method of the same name, so it takes either tensor kind. The engine
module and `gradserve` export the same function objects.

    >>> from gradserve import engine
    >>> engine.maximum(engine.tensor([1, 5]), engine.tensor([4, 2]))
    tensor([4, 5])
    >>> engine.split(engine.arange(5), 2)
    (tensor([0, 1]), tensor([2, 3]), tensor([4]))
"""

from __future__ import annotations

from . import functions_more as _more
from .einsum import einsum
from .out import OUT_FUNCTIONS, with_out
from .products import tensordot
from .random import FUNCTIONS as _RANDOM
from .tensor_api import TensorAPI, cat, matmul, stack, where

# torch.<name>(input, *args) is input.<name>(*args) for each of these
METHODS = (
    "abs", "neg", "negative", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu",
    "reciprocal", "clamp", "clip", "clamp_min", "clamp_max", "sum", "mean", "var", "std",
    "prod", "max", "min", "argmax",
    "argmin", "softmax", "log_softmax", "reshape", "flatten", "t", "transpose", "permute",
    "squeeze", "unsqueeze", "clone", "detach", "add", "sub", "mul", "div", "divide", "pow",
    "eq", "ne", "lt", "le", "gt", "ge", "greater", "less", "greater_equal", "less_equal",
    "not_equal", "equal", "isclose", "allclose", "isnan", "isinf", "isfinite", "logical_and",
    "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_left_shift", "bitwise_right_shift",
    "bitwise_not", "all", "any", "sort", "argsort", "topk", "median", "kthvalue", "amax",
    "amin", "norm", "logsumexp", "cumsum", "cumprod", "square", "rsqrt", "sign", "floor",
    "ceil", "round", "trunc", "frac", "remainder", "fmod", "floor_divide", "maximum",
    "minimum", "lerp", "log1p", "expm1", "log2", "log10", "erf", "sinh", "cosh", "asin", "acos",
    "atan", "arcsin", "arccos", "arctan", "atan2", "arctan2", "tile", "split", "chunk",
    "unbind", "flip", "fliplr", "flipud", "roll", "narrow", "gather", "scatter", "scatter_add",
    "index_select", "index_add", "masked_fill", "masked_select", "index_put", "nonzero",
    "argwhere", "unique", "tril", "triu", "diagonal", "unflatten", "movedim", "moveaxis",
    "count_nonzero",
    "swapaxes", "swapdims", "is_floating_point", "is_complex",
    # linear algebra (_api_linalg)
    "mm", "bmm", "mv", "dot", "vdot", "outer", "ger", "addmm", "addmv", "addbmm", "baddbmm",
    "trace", "matrix_power", "kron", "cross",
)


def _method_function(name: str):
    def fn(input, *args, **kwargs):
        if not isinstance(input, TensorAPI):
            raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not "
                            f"{type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"torch.{name}: `input.{name}(*args, **kwargs)` for either tensor kind."
    return fn


FUNCTIONS = {name: _method_function(name) for name in METHODS + _more.METHODS}
FUNCTIONS.update(_more.FUNCTIONS)


def pow(input, exponent):  # noqa: A001  (torch's name)
    """torch.pow(input, exponent), also with a Python number as the base (`PowBackward2`).

    >>> pow(2.0, engine.tensor([1.0, 3.0]))
    tensor([2., 8.])
    """
    if not isinstance(input, TensorAPI) and isinstance(exponent, TensorAPI):
        return exponent.__rpow__(input)
    return _tensor_pow(input, exponent)


_tensor_pow, FUNCTIONS["pow"] = FUNCTIONS["pow"], pow


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """torch.repeat_interleave(input, repeats, dim); with one integer tensor, the index that
    repeats each position as often as that tensor says.

    >>> repeat_interleave(engine.tensor([2, 0, 1]))
    tensor([0, 0, 2])
    """
    if repeats is None:
        return input._op("repeat_interleave", input)
    return input.repeat_interleave(repeats, dim, output_size=output_size)


def is_tensor(obj) -> bool:
    """Whether obj is a tensor of either kind (torch.is_tensor)."""
    return isinstance(obj, TensorAPI)


def numel(input) -> int:
    return input.numel()


def _like(name: str):
    def fn(input, *args, **kwargs):
        return getattr(input._home(), name)(input, *args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"torch.{name}: a new tensor like `input`, made where `input` lives (in "
                  "process, or on its session).")
    return fn


LIKE = {name: _like(name) for name in ("zeros_like", "ones_like", "empty_like", "full_like",
                                       "rand_like", "randn_like", "randint_like")}
FUNCTIONS.update(LIKE, repeat_interleave=repeat_interleave, is_tensor=is_tensor,
                 numel=numel, einsum=einsum)
FUNCTIONS.update(_RANDOM)


def _with_out_functions() -> None:
    """torch's out= on the functions that take it (see _out)."""

    FUNCTIONS.update(cat=cat, stack=stack, matmul=matmul, where=where, tensordot=tensordot)
    for name in OUT_FUNCTIONS:
        FUNCTIONS[name] = with_out(FUNCTIONS[name])


_with_out_functions()
