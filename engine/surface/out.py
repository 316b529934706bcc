"""`out=` on the module functions torch gives it (`gs.add(a, b, out=y)`, `gs.cat(ts, out=y)`,
...): the result is written into `out` and `out` is returned, with torch's rules: the result
type must cast to out's dtype; an out of another shape is resized (with torch's deprecation
warning unless it was empty); with an argument that requires grad it is an error, since
such writes are not differentiable.

    >>> from gradserve import engine
    >>> y = engine.empty(2)
    >>> _ = engine.add(engine.ones(2), 1, out=y)
    >>> y
    tensor([2., 2.])
"""

from __future__ import annotations

import functools

from ..core import grad_mode as _grad_mode
from ..core.dtype import TORCH_C_TYPE_NAMES, TORCH_SCALAR_NAMES, can_cast
from ..core.errors import InvalidArgumentError
from ..core.meta import AutogradMeta
from ..core.warn import warn_user

# torch's module functions that take out= (their out is one tensor)
OUT_FUNCTIONS = (
    "add", "sub", "mul", "div", "pow", "matmul", "mm", "bmm", "mv", "dot", "vdot", "outer",
    "addmm", "addmv", "addbmm", "baddbmm", "kron", "cross", "exp", "log", "sqrt", "abs", "neg",
    "sin", "cos", "tanh", "sigmoid", "reciprocal", "rsqrt", "square", "sign", "floor", "ceil",
    "round", "trunc", "frac", "log1p", "expm1", "log2", "log10", "erf", "sinh", "cosh", "asin",
    "acos", "atan", "atan2", "maximum", "minimum", "remainder", "fmod", "clamp", "clip", "lerp",
    "sum", "mean", "prod", "cumsum", "cumprod", "logsumexp", "amax", "amin", "index_select",
    "gather", "masked_select", "tril", "triu", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or",
    "bitwise_xor", "bitwise_not", "floor_divide", "cat", "stack", "where", "tensordot",
)

# torch's dtype rule differs per kernel: most cast the result when torch.can_cast allows it;
# these accept any out dtype; the ones in _EXACT want out's dtype to be the result's, each
# with its own message ({r}/{o}: the scalar names of result and out, {rc}/{oc}: C names)
_ANY_DTYPE = {"sum", "prod", "cumsum", "cumprod", "eq", "ne", "lt", "le", "gt", "ge",
              "logical_and", "logical_or", "logical_xor", "logical_not"}
# reductions that accumulate in out's dtype (torch casts the input to it first)
_ACCUMULATE_IN_OUT = {"sum", "prod", "cumsum", "cumprod"}
_TO_HAVE = "Expected out tensor to have dtype {rc}, but got {oc} instead"
_EXACT = {
    **dict.fromkeys(("mm", "bmm", "matmul", "addmm", "addmv", "baddbmm", "cross", "gather",
                     "tril", "triu"), _TO_HAVE),
    "mv": "addmv input tensors must have the same dtype, but got {o}, {r}, and {r}",
    "dot": "result dtype {o} does not match input dtype {r}",
    "vdot": "result dtype {o} does not match input dtype {r}",
    "addbmm": "self and mat2 must have the same dtype, but got {o} and {r}",
    "tensordot": "tensordot: Expected the output tensor to have dtype {r}, but got an output "
                 "tensor with dtype {o}",
    "clamp": "Found dtype {o} but expected {r}",
    "clip": "Found dtype {o} but expected {r}",
    "where": "Expected out type to be {r} but got {o}",
    "index_select": "index_select(): self and result must have the same scalar type",
    "masked_select": "masked_select(): self and result must have the same scalar type",
    "amax": "Expected the dtype for input and out to match, but got {r} for input's dtype and "
            "{o} for out's dtype.",
    "amin": "Expected the dtype for input and out to match, but got {r} for input's dtype and "
            "{o} for out's dtype.",
}
_CANT_CAST = {"mean": "mean.dtype_out(): input types can't be cast to the desired output type {o}",
              "cat": "torch.cat(): input types can't be cast to the desired output type {o}",
              "stack": "torch.cat(): input types can't be cast to the desired output type {o}"}

_RESIZED = (
    "An output with one or more elements was resized since it had shape {old}, which does not "
    "match the required output shape {new}. This behavior is deprecated, and in a future "
    "PyTorch release outputs will not be resized unless they have zero elements. You can "
    "explicitly reuse an out tensor t by resizing it, inplace, to zero elements with "
    "t.resize_(0)."
)


def _needs_grad(args) -> bool:
    for x in args:
        if isinstance(x, AutogradMeta) and x.requires_grad:
            return True
        if isinstance(x, (list, tuple)) and _needs_grad(x):
            return True
    return False


def _check_dtype(name: str, result, out) -> None:
    r, o = result.dtype.name, out.dtype.name
    if r == o or name in _ANY_DTYPE:
        return
    names = {"r": TORCH_SCALAR_NAMES[r], "o": TORCH_SCALAR_NAMES[o],
             "rc": TORCH_C_TYPE_NAMES[r], "oc": TORCH_C_TYPE_NAMES[o]}
    if name in _EXACT:
        raise InvalidArgumentError(_EXACT[name].format(**names))
    if not can_cast(result.dtype, out.dtype):
        if name in ("cat", "stack"):  # torch's is a TypeError
            raise TypeError(_CANT_CAST[name].format(**names))
        raise InvalidArgumentError(_CANT_CAST.get(
            name, "result type {r} can't be cast to the desired output type {o}").format(**names))


def write_out(out, result, name: str = ""):
    """Write `result` into `out` as torch's out= does (`name`: the function, for its dtype
    rule); returns out."""
    if not isinstance(out, AutogradMeta):
        raise TypeError(f"argument 'out' must be Tensor, not {type(out).__name__}")
    _check_dtype(name, result, out)
    if tuple(out.shape) != tuple(result.shape):
        if out.numel() > 0:
            warn_user(_RESIZED.format(old=list(out.shape), new=list(result.shape)))
        out.data = result if result.dtype is out.dtype else result.to(out.dtype)
        return out
    return out.copy_(result)


def with_out(fn):
    """fn with torch's `out=` keyword."""
    name = fn.__name__

    @functools.wraps(fn)
    def call(*args, out=None, **kwargs):
        if out is None:
            return fn(*args, **kwargs)
        if _grad_mode.is_grad_enabled() and _needs_grad((*args, *kwargs.values())):
            raise InvalidArgumentError(
                f"{name}(): functions with out=... arguments don't support automatic "
                "differentiation, but one of the arguments requires grad.")
        if name in _ACCUMULATE_IN_OUT and isinstance(out, AutogradMeta) and args and \
                isinstance(args[0], AutogradMeta) and args[0].dtype is not out.dtype:
            args = (args[0].to(out.dtype), *args[1:])
        return write_out(out, fn(*args, **kwargs), name)

    return call
