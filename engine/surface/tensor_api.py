"""The torch.Tensor surface, written once over two primitives.

`TensorAPI` turns every operator and method into a named op: `self._op(name, *inputs,
**attrs)` for a new tensor and `self._inplace(name, *others, **attrs)` for an in-place one.
The engine's Tensor runs the op at once; the client's RemoteTensor records it for the server.
Both therefore accept exactly the same calls and agree on argument handling.
"""

from __future__ import annotations

from ..core.backend import canonical_device
from ..core.dtype import DType, as_dtype, is_dtype_name
from ..core.errors import InvalidArgumentError
from ..core.shape import normalize_dim
from .compose import flatten as _flatten
from .compose import matmul as _matmul
from .compose import reshape as _reshape
from .compose import with_alpha as _alpha
from .indexing import getitem, setitem
from .inplace_views import InplaceViews
from .numpy_operands import array_result, ndarray
from .random import TensorRandom
from .tensor_linalg import TensorLinalg
from .tensor_math import TensorMath
from .tensor_more import TensorMore
from .tensor_shape import TensorShape

_CLAMP_NONE = "torch.clamp: At least one of 'min' or 'max' must not be None"


def _dim_arg(dim):
    if dim is None or isinstance(dim, int):
        return dim
    return tuple(int(d) for d in dim)


def _correction(unbiased, correction) -> int:
    if correction is not None:
        return int(correction)
    return 1 if unbiased is None or unbiased else 0


class TensorAPI(TensorMath, TensorShape, TensorRandom, TensorLinalg, TensorMore, InplaceViews):
    """Operators and methods shared by engine.Tensor and gradserve.RemoteTensor."""

    __slots__ = ()
    __hash__ = object.__hash__  # comparisons are elementwise, so hash by identity as torch
    # numpy defers `array + t` to t.__radd__ (a tensor, as torch's), not an array
    __array_priority__ = 1000

    def _op(self, name: str, *inputs, **attrs):
        raise NotImplementedError

    def _inplace(self, name: str, *others, **attrs):
        raise NotImplementedError

    # -- arithmetic ------------------------------------------------------------------------
    def __add__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "add")
        return self._op("add", self, other)

    def __radd__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("add", self, other)  # torch's order: self.add(other)

    def __sub__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "sub")
        return self._op("sub", self, other)

    def __rsub__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("sub", other, self)

    def __mul__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "mul")
        return self._op("mul", self, other)

    def __rmul__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("mul", self, other)  # torch's order: self.mul(other)

    def __truediv__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "div")
        return self._op("div", self, other)

    def __rtruediv__(self, other):
        if isinstance(other, TensorAPI):
            return self._op("div", other, self)
        # torch's `number / t` is reciprocal(t) * number: it keeps 1/t, not t
        return self._op("reciprocal", self) * other

    def __pow__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "pow")
        return self._op("pow", self, other)

    def __rpow__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("pow", other, self)

    def __matmul__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "matmul")
        return _matmul(self, other) if isinstance(other, TensorAPI) else self._op(
            "matmul", self, other)

    def __rmatmul__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return _matmul(other, self) if isinstance(other, TensorAPI) else self._op(
            "matmul", other, self)

    def __neg__(self):
        return self._op("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self._op("abs", self)

    def __lt__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("lt", self, other)

    def __le__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("le", self, other)

    def __gt__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("gt", self, other)

    def __ge__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("ge", self, other)

    def __eq__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "eq")
        return self._op("eq", self, other)

    def __ne__(self, other):
        if type(other) is ndarray:  # torch's too: Python's identity fallback
            return NotImplemented
        return self._op("ne", self, other)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def add(self, other, alpha=1):
        return self._op("add", self, other) if alpha == 1 else _alpha(self, "add", other, alpha)

    def sub(self, other, alpha=1):
        return self._op("sub", self, other) if alpha == 1 else _alpha(self, "sub", other, alpha)

    def mul(self, other):
        return self._op("mul", self, other)

    def div(self, other, *, rounding_mode=None):
        if rounding_mode is not None:
            return self._op("div_mode", self, other, mode=rounding_mode)
        return self._op("div", self, other)

    divide = div

    def pow(self, exponent):
        return self._op("pow", self, exponent)

    def matmul(self, other):
        return _matmul(self, other) if isinstance(other, TensorAPI) else self._op(
            "matmul", self, other)

    # -- elementwise math ------------------------------------------------------------------
    def neg(self):
        return self._op("neg", self)

    def abs(self):
        return self._op("abs", self)

    def exp(self):
        return self._op("exp", self)

    def log(self):
        return self._op("log", self)

    def sqrt(self):
        return self._op("sqrt", self)

    def sin(self):
        return self._op("sin", self)

    def cos(self):
        return self._op("cos", self)

    def tanh(self):
        return self._op("tanh", self)

    def sigmoid(self):
        return self._op("sigmoid", self)

    def relu(self):
        return self._op("relu", self)

    def reciprocal(self):
        return self._op("reciprocal", self)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise InvalidArgumentError(_CLAMP_NONE)
        if hasattr(min, "shape") or hasattr(max, "shape"):
            return self._clamp_tensor(min, max)
        return self._op("clamp", self, min=min, max=max)

    clip = clamp

    # -- reductions ------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False, *, dtype=None):
        x = self if dtype is None else self.to(dtype=dtype)
        return x._op("sum", x, dim=_dim_arg(dim), keepdim=bool(keepdim))

    def mean(self, dim=None, keepdim=False, *, dtype=None):
        x = self if dtype is None else self.to(dtype=dtype)
        return x._op("mean", x, dim=_dim_arg(dim), keepdim=bool(keepdim))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return self._op("var", self, dim=_dim_arg(dim),
                        correction=_correction(unbiased, correction), keepdim=bool(keepdim))

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return self._op("std", self, dim=_dim_arg(dim),
                        correction=_correction(unbiased, correction), keepdim=bool(keepdim))

    def prod(self, dim=None, keepdim=False):
        return self._op("prod", self, dim=dim, keepdim=bool(keepdim))

    def argmax(self, dim=None, keepdim=False):
        return self._op("argmax", self, dim=dim, keepdim=bool(keepdim))

    def argmin(self, dim=None, keepdim=False):
        return self._op("argmin", self, dim=dim, keepdim=bool(keepdim))

    def softmax(self, dim, dtype=None):
        x = self if dtype is None else self.to(dtype)  # torch casts first (ToCopyBackward0)
        return x._op("softmax", x, dim=int(dim))

    def log_softmax(self, dim, dtype=None):
        x = self if dtype is None else self.to(dtype)
        return x._op("log_softmax", x, dim=int(dim))

    # -- shape -----------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def size(self, dim=None):
        if dim is None:
            return self.shape
        return self.shape[normalize_dim(dim, len(self.shape))]

    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))  # as torch: one node, the rows its outputs

    def reshape(self, *shape):
        return _reshape(self, parse_size_allow_neg(shape))

    def view(self, *shape):
        return self._op("view", self, shape=parse_size_allow_neg(shape))

    def flatten(self, start_dim=0, end_dim=-1):
        return _flatten(self, start_dim, end_dim)

    def t(self):
        return self._op("t", self)

    @property
    def T(self):
        return self._op("permute", self, dims=tuple(range(len(self.shape) - 1, -1, -1)))

    def transpose(self, dim0, dim1):
        return self._op("transpose", self, dim0=int(dim0), dim1=int(dim1))

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = dims[0]
        return self._op("permute", self, dims=tuple(int(d) for d in dims))

    def squeeze(self, dim=None):
        return self._op("squeeze", self, dim=_dim_arg(dim))

    def unsqueeze(self, dim):
        return self._op("unsqueeze", self, dim=int(dim))

    def expand(self, *sizes):
        return self._op("expand", self, shape=parse_size_allow_neg(sizes))

    def expand_as(self, other):
        return self.expand(other.shape)

    def __getitem__(self, key):
        return getitem(self, key)  # torch's nodes: one view per item of a tuple key

    def __setitem__(self, key, value):
        """x[key] = value, as torch's: a copy into the view the key's basic items make (with
        value viewed and expanded to its shape), or torch's index_put_ on that view for
        index tensors, lists and masks (engine/surface/indexing.setitem)."""
        setitem(self, key, value)

    # -- copies and casts ------------------------------------------------------------------
    def clone(self):
        return self._op("clone", self)

    def float(self):
        return self.to(dtype="float32")

    def double(self):
        return self.to(dtype="float64")

    def long(self):
        return self.to(dtype="int64")

    def bool(self):
        return self.to(dtype="bool")

    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False):
        """A tensor with another dtype and/or device: to("cuda"), to(gs.float64),
        to("cuda", gs.float64), to(other_tensor); self when nothing changes (unless copy)."""
        for a in args:
            if isinstance(a, DType) or (isinstance(a, str) and is_dtype_name(a)):
                dtype = a
            elif isinstance(a, TensorAPI):
                dtype, device = a.dtype, a.device
            else:
                device = a
        dtype = self.dtype if dtype is None else as_dtype(dtype)
        device = self._device if device is None else canonical_device(device)
        if dtype is self.dtype and device == self._device:
            return self.clone() if copy else self
        return self._op("to", self, dtype=dtype.name, device=device)

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self, device=None):
        return self.to(device="cuda" if device is None else f"cuda:{int(device)}"
                       if isinstance(device, int) else device)

    # -- in place --------------------------------------------------------------------------
    def add_(self, other, alpha=1):
        return self._inplace("add", other) if alpha == 1 else _alpha(self, "add", other, alpha,
                                                                      True)

    def sub_(self, other, alpha=1):
        return self._inplace("sub", other) if alpha == 1 else _alpha(self, "sub", other, alpha,
                                                                      True)

    def mul_(self, other):
        return self._inplace("mul", other)

    def div_(self, other, *, rounding_mode=None):
        if rounding_mode is not None:
            return self._inplace("div_mode", other, mode=rounding_mode)
        return self._inplace("div", other)

    divide_ = div_

    def clamp_(self, min=None, max=None):
        if min is None and max is None:
            raise InvalidArgumentError(_CLAMP_NONE)
        if hasattr(min, "shape") or hasattr(max, "shape"):
            return self._clamp_tensor(min, max, inplace=True)
        return self._inplace("clamp", min=min, max=max)

    def relu_(self):
        return self._inplace("relu")

    def zero_(self):
        return self._inplace("fill", 0, zero=True)

    def fill_(self, value):
        return self._inplace("fill", value)

    def copy_(self, src):
        return self._inplace("copy", src)

    # -- plain values ----------------------------------------------------------------------
    def __bool__(self) -> bool:
        n = self.numel()
        if n != 1:
            raise InvalidArgumentError(
                f"Boolean value of Tensor with {'no values' if n == 0 else 'more than one value'}"
                " is ambiguous")
        return bool(self.item())

    def __format__(self, spec: str) -> str:
        # torch formats a 0-dim tensor as its value; gradserve also any one-element tensor
        # given a format spec (f"{loss:.4f}"); anything else formats as its repr
        if self.numel() == 1 and (spec or not self.shape):
            return format(self.item(), spec)
        return repr(self) if not spec else object.__format__(self, spec)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind != 1 or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def tolist(self):
        return self.numpy().tolist()





def parse_size_allow_neg(args) -> tuple[int, ...]:
    """Sizes for reshape/view/expand, where -1 means 'infer' or 'keep'."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    try:
        return tuple(int(a) for a in args)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"shape must be a sequence of ints, got {args!r}") from None


def _first_tensor(values):
    for v in values:
        if isinstance(v, TensorAPI):
            return v
    raise InvalidArgumentError("expected at least one tensor argument")


def cat(tensors, dim=0):
    """Concatenate tensors along an existing dim (torch.cat)."""
    tensors = list(tensors)
    if not tensors:
        raise InvalidArgumentError("torch.cat(): expected a non-empty list of Tensors")
    return _first_tensor(tensors)._op("cat", *tensors, dim=int(dim))


def stack(tensors, dim=0):
    """Stack same-shape tensors along a new dim (torch.stack)."""
    tensors = list(tensors)
    if not tensors:
        raise InvalidArgumentError("stack expects a non-empty TensorList")
    return _first_tensor(tensors)._op("stack", *tensors, dim=int(dim))


def where(condition, input, other):
    """Elementwise choice: input where condition else other (torch.where)."""
    return _first_tensor((condition, input, other))._op("where", condition, input, other)


def matmul(input, other):
    """Matrix product with torch's broadcasting rules (torch.matmul)."""
    if isinstance(input, TensorAPI) and isinstance(other, TensorAPI):
        return _matmul(input, other)
    return _first_tensor((input, other))._op("matmul", input, other)

