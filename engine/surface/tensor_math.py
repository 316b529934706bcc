"""The torch.Tensor methods of elementwise math, comparisons, logic and reductions beyond
the core operators (a mixin of `TensorAPI`, written over `_op`/`_inplace` like it).

    >>> from gradserve import engine
    >>> x = engine.tensor([-1.5, 0.5, 2.0])
    >>> (x > 0) & (x < 1), x.floor(), x.norm(1).item()
    (tensor([False,  True, False]), tensor([-2.,  0.,  2.]), 4.0)
"""

from __future__ import annotations

import numbers

from ..core.errors import InvalidArgumentError
from . import return_types as rt
from .numpy_operands import array_result, ndarray


def _dims(dim):
    if dim is None or isinstance(dim, int):
        return dim
    return tuple(int(d) for d in dim)


def _is_tensor(x) -> bool:
    return isinstance(x, TensorMath)


def _unary(name: str, doc: str):
    def method(self):
        return self._op(name, self)

    method.__name__ = name
    method.__doc__ = doc
    return method


def _unary_(name: str):
    def method(self):
        return self._inplace(name)

    method.__name__ = name + "_"
    method.__doc__ = f"In-place {name}(); returns self."
    return method


_UNARY = {
    "square": None, "rsqrt": "1 / sqrt(x)", "sign": "-1, 0 or 1", "floor": "round down",
    "ceil": "round up", "trunc": "round towards zero", "frac": "x - trunc(x)",
    "log1p": "log(1 + x)", "expm1": "exp(x) - 1", "log2": "base-2 log", "log10": "base-10 log",
    "erf": "the error function", "sinh": "hyperbolic sine", "cosh": "hyperbolic cosine",
    "asin": "arcsine", "acos": "arccosine", "atan": "arctangent",
    "logical_not": "elementwise not (bool result)", "isnan": "whether nan",
    "isinf": "whether infinite", "isfinite": "whether finite",
}
_INPLACE_UNARY = ("abs", "neg", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid",
                  "reciprocal", "rsqrt", "sign", "floor", "ceil", "trunc", "frac", "log1p",
                  "expm1", "log2", "log10", "erf", "sinh", "cosh", "asin", "acos", "atan")


class TensorMath:
    """Math, logic and reduction methods (see the module doc)."""

    __slots__ = ()

    # -- comparisons and logic ------------------------------------------------------------
    def eq(self, other):
        return self._op("eq", self, other)

    def ne(self, other):
        return self._op("ne", self, other)

    def lt(self, other):
        return self._op("lt", self, other)

    def le(self, other):
        return self._op("le", self, other)

    def gt(self, other):
        return self._op("gt", self, other)

    def ge(self, other):
        return self._op("ge", self, other)

    greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne

    def equal(self, other) -> bool:
        """True when both have the same shape and elements (a Python bool; waits remotely)."""
        if tuple(self.shape) != tuple(other.shape):
            return False
        return bool(self.eq(other).all().item())

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return self._op("isclose", self, other, rtol=float(rtol), atol=float(atol),
                        equal_nan=bool(equal_nan))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        """Whether every element is close (a Python bool; waits remotely)."""
        return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

    def logical_and(self, other):
        return self._op("logical_and", self, other)

    def logical_or(self, other):
        return self._op("logical_or", self, other)

    def logical_xor(self, other):
        return self._op("logical_xor", self, other)

    def bitwise_and(self, other):
        return self._op("bitwise_and", self, other)

    def bitwise_or(self, other):
        return self._op("bitwise_or", self, other)

    def bitwise_xor(self, other):
        return self._op("bitwise_xor", self, other)

    def bitwise_not(self):
        return self._op("bitwise_not", self)

    def bitwise_left_shift(self, other):
        return self._op("lshift", self, other)

    def bitwise_right_shift(self, other):
        return self._op("rshift", self, other)

    def bitwise_left_shift_(self, other):
        return self._inplace("lshift", other)

    def bitwise_right_shift_(self, other):
        return self._inplace("rshift", other)

    __and__ = bitwise_and
    __or__ = bitwise_or
    __xor__ = bitwise_xor
    __lshift__ = bitwise_left_shift
    __rshift__ = bitwise_right_shift
    __ilshift__ = bitwise_left_shift_
    __irshift__ = bitwise_right_shift_

    def __rlshift__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("lshift", other, self)

    def __rrshift__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("rshift", other, self)

    def __rand__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("bitwise_and", other, self)

    def __ror__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("bitwise_or", other, self)

    def __rxor__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("bitwise_xor", other, self)

    def __iand__(self, other):
        return self._inplace("bitwise_and", other)

    def __ior__(self, other):
        return self._inplace("bitwise_or", other)

    def __ixor__(self, other):
        return self._inplace("bitwise_xor", other)

    def __invert__(self):
        if self.dtype.is_floating_point:
            raise TypeError("~ (operator.invert) is only implemented on integer and "
                            "Boolean-type tensors")
        return self._op("bitwise_not", self)

    # -- two-operand math -------------------------------------------------------------------
    def remainder(self, other):
        return self._op("remainder", self, other)

    def fmod(self, other):
        return self._op("fmod", self, other)

    def floor_divide(self, other):
        return self._op("floor_divide", self, other)

    def __mod__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "remainder")
        return self._op("remainder", self, other)

    def __rmod__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("remainder", other, self)

    def __floordiv__(self, other):
        if type(other) is ndarray:
            return array_result(self, other, "floor_divide")
        return self._op("floor_divide", self, other)

    def __rfloordiv__(self, other):
        if type(other) is ndarray:
            return NotImplemented
        return self._op("floor_divide", other, self)

    def atan2(self, other):
        return self._op("atan2", self, other)

    arctan2 = atan2

    def maximum(self, other):
        return self._op("maximum", self, other)

    def minimum(self, other):
        return self._op("minimum", self, other)

    def lerp(self, end, weight):
        return self._op("lerp", self, end, weight)

    def pow_(self, exponent):
        return self._inplace("pow", exponent)

    def lerp_(self, end, weight):
        return self._inplace("lerp", end, weight)

    # -- one-operand math (see _UNARY below) -----------------------------------------------
    def square(self):
        """x * x, recorded as torch does (pow(x, 2): PowBackward0)."""
        return self._op("pow", self, 2)

    def round(self, decimals: int = 0):
        if decimals:
            return self._op("round", self, decimals=int(decimals))
        return self._op("round", self)

    def round_(self, decimals: int = 0):
        return self._inplace("round", **({"decimals": int(decimals)} if decimals else {}))

    # -- reductions -------------------------------------------------------------------------
    def all(self, dim=None, keepdim=False):
        return self._op("all", self, dim=_dims(dim), keepdim=bool(keepdim))

    def any(self, dim=None, keepdim=False):
        return self._op("any", self, dim=_dims(dim), keepdim=bool(keepdim))

    def count_nonzero(self, dim=None):
        """The number of nonzero elements (over `dim`, an int or a tuple), as int64."""
        return (self != 0).sum(dim)

    def max(self, dim=None, keepdim=False):
        """max(): the largest element; max(dim): (values, indices); max(other): maximum."""
        if dim is None:
            return self._op("max", self)
        if _is_tensor(dim):
            return self._op("maximum", self, dim)
        return rt.max(*self._op("max_dim", self, dim=int(dim), keepdim=bool(keepdim)))

    def min(self, dim=None, keepdim=False):
        """min(): the smallest element; min(dim): (values, indices); min(other): minimum."""
        if dim is None:
            return self._op("min", self)
        if _is_tensor(dim):
            return self._op("minimum", self, dim)
        return rt.min(*self._op("min_dim", self, dim=int(dim), keepdim=bool(keepdim)))

    def amax(self, dim=(), keepdim=False):
        return self._op("amax", self, dim=_dims(dim) if dim != () else (), keepdim=bool(keepdim))

    def amin(self, dim=(), keepdim=False):
        return self._op("amin", self, dim=_dims(dim) if dim != () else (), keepdim=bool(keepdim))

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """The vector p-norm over `dim` (all elements by default): p a number, inf, -inf or
        "fro" (= 2)."""
        if p is None or p == "fro":
            p = 2.0
        elif isinstance(p, str):
            raise InvalidArgumentError(f"norm: p={p!r} is a matrix norm; use p='fro' or a number")
        x = self if dtype is None else self.to(dtype=dtype)
        return x._op("norm", x, p=float(p), dim=_dims(dim), keepdim=bool(keepdim))

    def logsumexp(self, dim, keepdim=False):
        return self._op("logsumexp", self, dim=_dims(dim), keepdim=bool(keepdim))

    def cumsum(self, dim, dtype=None):
        x = self if dtype is None else self.to(dtype=dtype)
        return x._op("cumsum", x, dim=int(dim))

    def cumprod(self, dim, dtype=None):
        x = self if dtype is None else self.to(dtype=dtype)
        return x._op("cumprod", x, dim=int(dim))

    def sort(self, dim=-1, descending=False, stable=None):
        """Values and indices along dim; always stable (equal elements keep their order)."""
        attrs = {} if stable is None else {"stable": bool(stable)}  # torch's second overload
        return rt.sort(*self._op("sort", self, dim=int(dim), descending=bool(descending),
                                 **attrs))

    def argsort(self, dim=-1, descending=False, stable=False):
        return self.sort(dim, descending, stable).indices

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return rt.topk(*self._op("topk", self, k=int(k), dim=int(dim), largest=bool(largest)))

    def kthvalue(self, k, dim=-1, keepdim=False):
        return rt.kthvalue(*self._op("kthvalue", self, k=int(k), dim=int(dim),
                                     keepdim=bool(keepdim)))

    def median(self, dim=None, keepdim=False):
        """median(): the lower median of all elements; median(dim): (values, indices)."""
        if dim is None:
            return self._op("median", self)
        return rt.median(*self._op("median_dim", self, dim=int(dim), keepdim=bool(keepdim)))

    def __contains__(self, element) -> bool:
        if not isinstance(element, (numbers.Number, TensorMath)):
            raise InvalidArgumentError(
                f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                f"{type(element).__name__}.")
        return bool((self == element).any().item())


for _name, _doc in _UNARY.items():
    if _doc is not None:
        setattr(TensorMath, _name, _unary(_name, f"{_doc.capitalize()}, elementwise."))
for _name in _INPLACE_UNARY:
    setattr(TensorMath, _name + "_", _unary_(_name))
TensorMath.square_ = lambda self: self._inplace("pow", 2)
TensorMath.arcsin, TensorMath.arccos, TensorMath.arctan = (TensorMath.asin, TensorMath.acos,
                                                           TensorMath.atan)
