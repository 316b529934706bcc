"""More torch.Tensor methods, for either tensor kind (a mixin of `TensorAPI`): select, clamp
with tensor bounds, addcmul/addcdiv, diag, diag_embed, diff, nan_to_num, logit, xlogy, hypot,
exp2, sinc, dist, nansum, sum_to_size, tensor_split, logcumsumexp, cummax, cummin (and the
elementwise ones in place). What torch computes in one kernel is one op here (ops/elementwise/
extra.py and shrink.py, ops/reductions/scans.py); the rest are torch's compositions.

    >>> from gradserve import engine
    >>> x = engine.tensor([[1., 2.], [3., 4.]])
    >>> x.select(1, 0), x.diff(dim=0)
    (tensor([1., 3.]), tensor([[2., 2.]]))
"""

from __future__ import annotations

from ..core.errors import InvalidArgumentError, TensorIndexError
from ..core.shape import normalize_dim
from . import return_types as rt


def _sizes(t) -> str:
    return "[" + ", ".join(str(n) for n in t.shape) + "]"


class TensorMore:
    __slots__ = ()

    def select(self, dim, index):
        if self.ndim == 0:
            raise TensorIndexError("select() cannot be applied to a 0-dim tensor.")
        d = normalize_dim(int(dim), self.ndim)
        n = self.shape[d]
        index = int(index)
        if not -n <= index < n:
            raise TensorIndexError(f"select(): index {index} out of range for tensor of size "
                                   f"{_sizes(self)} at dimension {int(dim)}")
        return self[(slice(None),) * d + (index,)]

    def _clamp_tensor(self, lo, hi, inplace=False, named=False):
        """clamp with tensor bounds (ClampBackward0); a missing one travels as the other (ignored,
        per `bounds`). A number beside a tensor is torch's TypeError."""
        if any(b is not None and not hasattr(b, "shape") for b in (lo, hi)):
            got = ", ".join(type(b).__name__ if not hasattr(b, "shape") else "Tensor"
                            for b in (lo, hi) if b is not None)
            name = "clamp_" if inplace else "clamp"
            raise TypeError(
                f"{name}() received an invalid combination of arguments - got ({got}), but "
                "expected one of:\n * (Tensor min = None, Tensor max = None)\n"
                " * (Number min = None, Number max = None)")
        bounds = "both" if lo is not None and hi is not None else "min" if hi is None else "max"
        lo, hi = hi if lo is None else lo, lo if hi is None else hi
        attrs = {"bounds": bounds, "named": True} if named else {"bounds": bounds}
        if inplace:
            return self._inplace("clamp_tensor", lo, hi, **attrs)
        return self._op("clamp_tensor", self, lo, hi, **attrs)

    def clamp_min(self, min):
        """torch's clamp_min: a number bound (ClampMinBackward0) or a tensor one (...1)."""
        if hasattr(min, "shape"):
            return self._clamp_tensor(min, None, named=True)
        return self._op("clamp_min", self, bound=min)

    def clamp_max(self, max):
        if hasattr(max, "shape"):
            return self._clamp_tensor(None, max, named=True)
        return self._op("clamp_max", self, bound=max)

    def clamp_min_(self, min):
        if hasattr(min, "shape"):
            return self._clamp_tensor(min, None, inplace=True, named=True)
        return self._inplace("clamp_min", bound=min)

    def clamp_max_(self, max):
        if hasattr(max, "shape"):
            return self._clamp_tensor(None, max, inplace=True, named=True)
        return self._inplace("clamp_max", bound=max)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return self._op("addcmul", self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return self._op("addcdiv", self, tensor1, tensor2, value=value)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return self._inplace("addcmul", tensor1, tensor2, value=value)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return self._inplace("addcdiv", tensor1, tensor2, value=value)

    def exp2(self):
        return self._op("exp2", self)

    def logit(self, eps=None):
        return self._op("logit", self, **({} if eps is None else {"eps": float(eps)}))

    def xlogy(self, other):
        return self._op("xlogy", self, other)

    def hypot(self, other):
        return self._op("hypot", self, other)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        attrs = {"nan": float(nan)}
        if posinf is not None:
            attrs["posinf"] = float(posinf)
        if neginf is not None:
            attrs["neginf"] = float(neginf)
        return self._op("nan_to_num", self, **attrs)

    def nansum(self, dim=None, keepdim=False, *, dtype=None):
        """Sum treating nan as zero (torch's gradient: g where not nan, 0 at a nan)."""
        x = self if dtype is None else self.to(dtype=dtype)
        if not x.is_floating_point():
            return x.sum(dim, keepdim)
        return x._op("nansum", x, dim=dim if dim is None or isinstance(dim, int)
                     else tuple(int(d) for d in dim), keepdim=bool(keepdim))

    def exp2_(self):
        return self._inplace("exp2")

    def sinc_(self):
        return self._inplace("sinc")

    def logit_(self, eps=None):
        return self._inplace("logit", **({} if eps is None else {"eps": float(eps)}))

    def xlogy_(self, other):
        return self._inplace("xlogy", other)

    def hypot_(self, other):
        return self._inplace("hypot", other)

    def nan_to_num_(self, nan=0.0, posinf=None, neginf=None):
        attrs = {"nan": float(nan)}
        if posinf is not None:
            attrs["posinf"] = float(posinf)
        if neginf is not None:
            attrs["neginf"] = float(neginf)
        return self._inplace("nan_to_num", **attrs)

    def logcumsumexp(self, dim):
        return self._op("logcumsumexp", self, dim=int(dim))

    def cummax(self, dim):
        return rt.cummax(*self._op("cummax", self, dim=int(dim)))

    def cummin(self, dim):
        return rt.cummin(*self._op("cummin", self, dim=int(dim)))

    def sinc(self):
        return self._op("sinc", self)

    def dist(self, other, p=2):
        """The p-norm of self - other (broadcast), one op (DistBackward0)."""
        return self._op("dist", self, other, p=float(p))

    def sum_to_size(self, *size):
        """Sum broadcast dims away so the result has `size` (the reverse of expand)."""
        if len(size) == 1 and hasattr(size[0], "__iter__"):
            size = tuple(size[0])
        size = tuple(int(n) for n in size)
        shape = tuple(self.shape)
        lead = len(shape) - len(size)
        if lead < 0 or any(s not in (1, n) for s, n in zip(size, shape[lead:], strict=True)):
            raise InvalidArgumentError(
                f"size {{{list(size)}}} is not expandable to size {{{list(shape)}}}.")
        if size == shape:
            return self
        dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(size)
                                          if s == 1 and shape[lead + i] != 1)
        out = self.sum(dims, keepdim=True) if dims else self
        return out.view(size) if lead else out

    def diag(self, diagonal=0):
        """1-D: a matrix with self on its `diagonal`; 2-D: that diagonal (a copy)."""
        k = int(diagonal)
        if self.ndim == 2:
            return self._op("diagonal_copy", self, offset=k)
        if self.ndim != 1:
            raise InvalidArgumentError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")
        return self.diag_embed(k)

    def diag_embed(self, offset=0, dim1=-2, dim2=-1):
        """A tensor whose (dim1, dim2) diagonals at `offset` are self's last dim."""
        return self._op("diag_embed", self, offset=int(offset), dim1=int(dim1), dim2=int(dim2))

    def diff(self, n=1, dim=-1, prepend=None, append=None):
        """The n-th forward difference along dim (after prepending/appending)."""
        if self.ndim == 0:
            raise InvalidArgumentError("diff expects input to be at least one-dimensional")
        n = int(n)
        if n < 0:
            raise InvalidArgumentError(f"order must be non-negative but got {n}")
        d = normalize_dim(int(dim), self.ndim)
        parts = [p for p in (prepend, self, append) if p is not None]
        x = self
        if len(parts) > 1:
            # tensor_api builds TensorAPI from this mixin, so it is imported when needed
            from .tensor_api import cat

            x = cat([p if hasattr(p, "shape") else self.new_full(
                self.shape[:d] + (1,) + self.shape[d + 1:], p) for p in parts], d)
        for _ in range(n):
            size = x.shape[d]
            length, start = max(size - 1, 0), min(size, 1)
            if x.dtype.name == "bool":
                x = x.narrow(d, start, length) ^ x.narrow(d, 0, length)
            else:
                x = x.narrow(d, start, length) - x.narrow(d, 0, length)
        return x

    def tensor_split(self, indices_or_sections, dim=0):
        """Split into `n` nearly equal parts (the first `size % n` one longer) or at indices."""
        if self.ndim == 0:
            raise InvalidArgumentError(
                "tensor_split expected at least a 1-dimensional tensor, but got a tensor with "
                "0 dims")
        d = normalize_dim(int(dim), self.ndim)
        size = self.shape[d]
        if hasattr(indices_or_sections, "shape"):
            indices_or_sections = indices_or_sections.tolist()
        if isinstance(indices_or_sections, int):
            k = indices_or_sections
            if k <= 0:
                raise InvalidArgumentError(f"number of sections must be larger than 0, got {k}")
            lengths = [size // k + (1 if i < size % k else 0) for i in range(k)]
            bounds, start = [], 0
            for length in lengths:
                bounds.append((start, start + length))
                start += length
        else:
            cuts = [int(i) for i in indices_or_sections]
            edges = [0, *cuts, size]
            bounds = list(zip(edges[:-1], edges[1:], strict=True))
        return tuple(self[(slice(None),) * d + (slice(_clip(a, size), _clip(b, size)),)]
                     for a, b in bounds)


def _clip(i: int, size: int) -> int:
    if i < 0:
        i += size
    return min(max(i, 0), size)
