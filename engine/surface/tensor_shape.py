"""The torch.Tensor methods that rearrange, select and scatter elements, make tensors like
this one (`new_zeros`, ...) and cast (a mixin of `TensorAPI`, over `_op`/`_inplace`).

    >>> from gradserve import engine
    >>> x = engine.arange(6.0).reshape(2, 3)
    >>> x.flip(1).roll(1, 0)[x.T.mT > 2]
    tensor([2., 1., 0.])
"""

from __future__ import annotations

from ..core.errors import InvalidArgumentError
from ..core.indexing import encode_key
from ..core.shape import normalize_dim


def _ints(values) -> tuple[int, ...]:
    if isinstance(values, int):
        return (values,)
    return tuple(int(v) for v in values)


def _size_args(args) -> tuple[int, ...]:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(int(a) for a in args)


class TensorShape:
    """Shape, selection, scatter, like-this factories and casts (see the module doc)."""

    __slots__ = ()

    # -- copies that rearrange -----------------------------------------------------------------
    def repeat(self, *sizes):
        return self._op("repeat", self, sizes=_size_args(sizes))

    def tile(self, *dims):
        dims = _size_args(dims)
        dims = (1,) * (len(self.shape) - len(dims)) + dims
        return self._op("repeat", self, sizes=dims)

    def flip(self, *dims):
        return self._op("flip", self, dims=_size_args(dims))

    def fliplr(self):
        return self.flip(1)

    def flipud(self):
        return self.flip(0)

    def roll(self, shifts, dims=None):
        return self._op("roll", self, shifts=_ints(shifts),
                        dims=None if dims is None else _ints(dims))

    # -- views -----------------------------------------------------------------------------------
    def split(self, split_size_or_sections, dim=0):
        """Pieces along dim: equal pieces of an int size (the last may be smaller), or the
        sizes listed. Views of self."""
        if isinstance(split_size_or_sections, int):
            return self._op("split", self, split_size=split_size_or_sections, dim=int(dim))
        return self._op("split_with_sizes", self, sizes=_ints(split_size_or_sections),
                        dim=int(dim))

    def chunk(self, chunks: int, dim=0):
        """At most `chunks` pieces of equal size along dim (the last may be smaller)."""
        if chunks <= 0:
            raise InvalidArgumentError(f"chunk expects `chunks` to be greater than 0, got: "
                                       f"{chunks}")
        size = self.shape[normalize_dim(dim, max(self.dim(), 1))] if self.shape else 0
        return self.split(max(-(-size // chunks), 1 if size else 0), dim)

    def unbind(self, dim=0):
        return self._op("unbind", self, dim=int(dim))

    def narrow(self, dim, start, length):
        return self._op("narrow", self, dim=int(dim), start=int(start), length=int(length))

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return self._op("diagonal", self, offset=int(offset), dim1=int(dim1), dim2=int(dim2))

    def unflatten(self, dim, sizes):
        d = normalize_dim(dim, max(self.dim(), 1))
        sizes = list(_ints(sizes))
        if -1 in sizes:
            known = 1
            for n in sizes:
                known *= n if n != -1 else 1
            sizes[sizes.index(-1)] = self.shape[d] // known if known else 0
        return self.view(tuple(self.shape[:d]) + tuple(sizes) + tuple(self.shape[d + 1:]))

    def movedim(self, source, destination):
        src, dst = _ints(source), _ints(destination)
        n = self.dim()
        if len(src) != len(dst):
            raise InvalidArgumentError(
                f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
                f"contain the same number of dims as destination ({list(dst)} dims)")
        src = [normalize_dim(s, max(n, 1)) for s in src]
        dst = [normalize_dim(d, max(n, 1)) for d in dst]
        order = [None] * n
        for s, d in zip(src, dst, strict=True):
            order[d] = s
        rest = iter(i for i in range(n) if i not in src)
        return self.permute(tuple(o if o is not None else next(rest) for o in order))

    moveaxis = movedim

    def swapaxes(self, axis0, axis1):
        return self.transpose(axis0, axis1)

    swapdims = swapaxes

    @property
    def mT(self):  # noqa: N802  (torch's name)
        if self.dim() < 2:
            raise InvalidArgumentError("tensor.mT is only supported on matrices or batches of "
                                       f"matrices. Got {self.dim()}-D tensor.")
        return self.transpose(-2, -1)

    def contiguous(self, memory_format=None):
        return self if self.is_contiguous() else self._op("clone", self, contiguous=True)

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    # -- select and scatter ------------------------------------------------------------------
    def gather(self, dim, index):
        return self._op("gather", self, index, dim=int(dim))

    def scatter(self, dim, index, src=None, value=None):
        return self._op("scatter", self, index, value if src is None else src, dim=int(dim))

    def scatter_(self, dim, index, src=None, value=None):
        return self._inplace("scatter", index, value if src is None else src, dim=int(dim))

    def scatter_add(self, dim, index, src):
        return self._op("scatter_add", self, index, src, dim=int(dim))

    def scatter_add_(self, dim, index, src):
        return self._inplace("scatter_add", index, src, dim=int(dim))

    def index_select(self, dim, index):
        return self._op("index_select", self, index, dim=int(dim))

    def index_add(self, dim, index, source, *, alpha=1):
        return self._op("index_add", self, index, source, dim=int(dim), alpha=alpha)

    def index_add_(self, dim, index, source, *, alpha=1):
        return self._inplace("index_add", index, source, dim=int(dim), alpha=alpha)

    def masked_fill(self, mask, value):
        return self._op("masked_fill", self, mask, value)

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill", mask, value)

    def masked_select(self, mask):
        """The elements where mask is True, as a 1-D tensor (its length is data: a remote
        session learns it with one round trip)."""
        return self._op("masked_select", self, mask)

    def index_put(self, indices, values, accumulate=False):
        spec, tensors = encode_key(tuple(indices))
        return self._op("index_put", self, values, *tensors, key=spec,
                        accumulate=bool(accumulate))

    def index_put_(self, indices, values, accumulate=False):
        spec, tensors = encode_key(tuple(indices))
        return self._inplace("index_put", values, *tensors, key=spec,
                             accumulate=bool(accumulate))

    def nonzero(self, *, as_tuple=False):
        """Indices of the nonzero elements, (n, ndim); with as_tuple one 1-D tensor per dim."""
        out = self._op("nonzero", self)
        return out.unbind(1) if as_tuple else out

    def argwhere(self):
        return self._op("nonzero", self)

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
        values, inverse, counts = self._op("unique", self, sorted=bool(sorted),
                                           dim=None if dim is None else int(dim))
        if return_inverse and return_counts:
            return values, inverse, counts
        if return_inverse:
            return values, inverse
        if return_counts:
            return values, counts
        return values

    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        """Each element (or slice along dim) repeated; `repeats` an int or a tensor of
        counts (then the length is data: one round trip on a remote session)."""
        x = self.flatten() if dim is None else self
        d = 0 if dim is None else normalize_dim(dim, max(x.dim(), 1))
        if isinstance(repeats, int):
            if repeats < 0:
                raise InvalidArgumentError("repeats can not be negative")
            if not x.shape:
                x = x.reshape(1)
            shape = list(x.shape)
            big = shape[:d + 1] + [repeats] + shape[d + 1:]
            shape[d] *= repeats
            return x.unsqueeze(d + 1).expand(big).contiguous().view(shape)
        n = x.shape[d] if x.shape else 1
        if repeats.numel() == 1 and n != 1:
            repeats = repeats.reshape(1).expand(n)
        elif repeats.dim() != 1 or repeats.shape[0] != n:
            raise InvalidArgumentError("repeats must have the same size as input along dim, but "
                                       f"got repeats.size(0) = {repeats.numel()} and "
                                       f"input.size({d}) = {n}")
        return x.index_select(d, repeats._op("repeat_interleave", repeats))

    def tril(self, diagonal=0):
        return self._op("tril", self, diagonal=int(diagonal))

    def triu(self, diagonal=0):
        return self._op("triu", self, diagonal=int(diagonal))

    def tril_(self, diagonal=0):
        return self._inplace("tril", diagonal=int(diagonal))

    def triu_(self, diagonal=0):
        return self._inplace("triu", diagonal=int(diagonal))

    # -- like this tensor --------------------------------------------------------------------
    def _home(self):
        """The factories that make tensors of this kind and place (the engine's, or the
        tensor's session)."""
        raise NotImplementedError

    def _new(self, name, args, dtype, device, requires_grad):
        return getattr(self._home(), name)(*args, dtype=self.dtype if dtype is None else dtype,
                                           device=self.device if device is None else device,
                                           requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("zeros", size, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("ones", size, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("empty", size, dtype, device, requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return self._new("full", (size, fill_value), dtype, device, requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return self._new("tensor", (data,), dtype, device, requires_grad)

    # -- casts ------------------------------------------------------------------------------
    def half(self):
        return self.to(dtype="float16")

    def short(self):
        return self.to(dtype="int16")

    def int(self):
        return self.to(dtype="int32")

    def byte(self):
        return self.to(dtype="uint8")

    def char(self):
        return self.to(dtype="int8")

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    def is_complex(self) -> bool:
        return False

    def nelement(self) -> int:
        return self.numel()

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize
