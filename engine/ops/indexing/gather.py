"""Ops that move elements by index: gather, scatter, scatter_add, index_select, index_add,
masked_fill, index_put (`x[idx] = v`, `x[mask] = v`), masked_select, nonzero, unique, the
index of repeat_interleave, and tril/triu.

`masked_select`, `nonzero`, `unique` and repeat_interleave's index have shapes that depend
on the data: their shape rules leave them unknown (`Meta(None, ...)`), the engine takes them
from the result and a client asks the server for them (one round trip).

    >>> from gradserve import engine
    >>> x = engine.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> y = x.gather(1, engine.tensor([[1], [0]]))
    >>> y, y.grad_fn.name()
    (tensor([[2.],
            [3.]], grad_fn=<GatherBackward0>), 'GatherBackward0')
"""

from __future__ import annotations

from ...core.backend import scatter_add as add_at
from ...core.dtype import TORCH_SCALAR_NAMES, bool_, int64
from ...core.errors import InvalidArgumentError, TensorIndexError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes, normalize_dim
from ...ops.elementwise.binary import no_derivative
from ..edges import edges_of, input_needs, to_edges


def _int_index(name: str, idx) -> None:
    if not hasattr(idx, "shape") or idx.dtype is not int64:
        got = TORCH_SCALAR_NAMES[idx.dtype.name] if hasattr(idx, "dtype") else "number"
        raise InvalidArgumentError(f"{name}(): Expected dtype int64 for index, got {got}")


def _check_dims(name: str, x, dim: int, idx, src=None) -> int:
    _int_index(name, idx)
    d = normalize_dim(dim, max(len(x.shape), 1))
    if len(idx.shape) != len(x.shape) and idx.shape:
        raise InvalidArgumentError(
            "Index tensor must have the same number of dimensions as input tensor")
    for other, what in ((x, "self"), (src, "src")):
        if other is None or not hasattr(other, "shape"):
            continue
        for i, (n, m) in enumerate(zip(idx.shape, other.shape, strict=False)):
            if (i != d or what == "src") and n > m:
                raise InvalidArgumentError(
                    f"Size does not match at dimension {i} expected index {list(idx.shape)} to "
                    f"be no larger than {what} {list(other.shape)} apart from dimension {d}")
    return d


def _grids(xp, idx, dim):
    """The full index of every element of idx's shape, with dim taken from idx itself."""
    nd = idx.ndim
    grids = [xp.arange(n).reshape((1,) * i + (n,) + (1,) * (nd - i - 1))
             for i, n in enumerate(idx.shape)]
    grids[dim] = idx
    return tuple(grids)


def _bounds(idx, size: int, dim: int) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= size):  # two reductions, no temporaries
        bad = (idx < 0) | (idx >= size)
        raise TensorIndexError(f"index {int(idx[bad].reshape(-1)[0])} is out of bounds for "
                               f"dimension {dim} with size {size}")


def _part(src, shape):
    return src[tuple(slice(0, n) for n in shape)]


# -- gather / scatter ------------------------------------------------------------------------
def _gather_meta(x, idx, dim):
    _check_dims("gather", x, dim, idx)
    return Meta(tuple(idx.shape), x.dtype)


def _gather(xp, x, idx, dim):
    if x.ndim == 0:
        _bounds(idx, 1, 0)
        return xp.broadcast_to(x, idx.shape).copy()
    d = normalize_dim(dim, x.ndim)
    if idx.size and idx.min() < 0:  # the array library would count these from the end
        _bounds(idx, x.shape[d], d)
    try:
        return x[_grids(xp, idx, d)]  # an index smaller than x in other dims reads a corner
    except IndexError:
        _bounds(idx, x.shape[d], d)  # torch's message for the index past the end
        raise


# torch keeps self too (its gather_backward reads it), so an in-place change to it raises
# (index tensors, masks and a Python number operand have no edge in torch's nodes)
gather = defop("gather", infer=_gather_meta, grad_name=edges_of("GatherBackward0", (0,)),
               save=(0, 1))(_gather)


@gather.def_backward
def _(ctx, g):
    _, idx = ctx.saved
    zeros = g._op("zeros", shape=tuple(ctx.in_shapes[0]), dtype=g.dtype.name, device=g.device)
    return (zeros._op("scatter_add", zeros, idx, g, dim=ctx.attrs["dim"]),)


def _scatter_meta(x, idx, src, dim):
    _check_dims("scatter", x, dim, idx, src)
    if hasattr(src, "shape") and src.dtype is not x.dtype:
        raise InvalidArgumentError(
            "scatter(): Expected self.dtype to be equal to src.dtype")
    return Meta(tuple(x.shape), x.dtype)


def _scatter(add: bool):
    def forward(xp, x, idx, src, dim):
        out = x.copy()
        if x.ndim == 0:  # a 0-dim tensor indexed by a 0-dim index 0 is its only element
            _bounds(idx, 1, 0)
            value = src.reshape(()) if hasattr(src, "shape") else src
            return (out + value if add else xp.full_like(out, value)) if idx.size else out
        d = normalize_dim(dim, x.ndim)
        _bounds(idx, x.shape[d], d)
        where = _grids(xp, idx, d)
        values = _part(src, idx.shape) if hasattr(src, "shape") and src.ndim else src
        if add:
            add_at(xp, out, where, xp.broadcast_to(values, idx.shape))
        else:
            out[where] = values
        return out

    return forward


_SCATTER = edges_of("ScatterBackward0", (0, 2)), edges_of("ScatterBackward1", (0,))
scatter = defop("scatter", infer=_scatter_meta, save=(1,), grad_name=lambda x, i, src, dim:
                _SCATTER[0] if hasattr(src, "shape") else _SCATTER[1])(
    _scatter(False))


@scatter.def_backward
def _(ctx, g):
    (idx,) = ctx.saved
    dim = ctx.attrs["dim"]
    needs = input_needs(ctx, 3)
    gx = g._op("scatter", g, idx, 0.0, dim=dim) if needs[0] else None
    gs = g._op("gather", g, idx, dim=dim) if needs[2] else None
    return to_edges(ctx, (gx, None, gs))


scatter_add = defop("scatter_add", infer=_scatter_meta,
                    grad_name=edges_of("ScatterAddBackward0", (0, 2)),
                    save=(1,))(_scatter(True))


@scatter_add.def_backward
def _(ctx, g):
    (idx,) = ctx.saved
    gs = g._op("gather", g, idx, dim=ctx.attrs["dim"]) if ctx.needs[2] else None
    return g, gs


# -- index_select / index_add --------------------------------------------------------------
def _select_index(name, x, idx, dim):
    _int_index(name, idx)
    if len(idx.shape) > 1:
        raise InvalidArgumentError(f"{name}(): Index is supposed to be a vector")
    return normalize_dim(dim, max(len(x.shape), 1))


def _index_select_meta(x, idx, dim):
    d = _select_index("index_select", x, idx, dim)
    n = idx.shape[0] if idx.shape else 1
    shape = tuple(x.shape[:d]) + (n,) + tuple(x.shape[d + 1:]) if x.shape else ()
    return Meta(shape, x.dtype)


def _index_select(xp, x, idx, dim):
    if x.ndim == 0:
        _bounds(idx, 1, 0)
        return x.copy()
    d = normalize_dim(dim, x.ndim)
    flat = idx.reshape(-1)
    try:
        if flat.size and flat.min() < 0:  # take would count these from the end
            raise IndexError
        return xp.take(x, flat, axis=d)
    except IndexError:
        raise TensorIndexError("index out of range in self") from None


index_select = defop("index_select", infer=_index_select_meta,
                     grad_name=edges_of("IndexSelectBackward0", (0,)),
                     save=(1,))(_index_select)


@index_select.def_backward
def _(ctx, g):
    (idx,) = ctx.saved
    zeros = g._op("zeros", shape=tuple(ctx.in_shapes[0]), dtype=g.dtype.name, device=g.device)
    return (zeros._op("index_add", zeros, idx, g, dim=ctx.attrs["dim"]),)


def _index_add_meta(x, idx, src, dim, alpha=1):
    d = _select_index("index_add", x, idx, dim)
    n = idx.shape[0] if idx.shape else 1
    want = tuple(x.shape[:d]) + (n,) + tuple(x.shape[d + 1:]) if x.shape else ()
    if tuple(src.shape) != want:
        raise InvalidArgumentError(
            f"index_add_(): Source/destination tensor must have same slice shapes. Destination "
            f"slice shape: {list(x.shape)} at dimension {d} and source slice shape: "
            f"{list(src.shape)} at dimension 0.")
    if src.dtype is not x.dtype:
        raise InvalidArgumentError("index_add_(): self and source expected to have the same "
                                   "dtype")
    return Meta(tuple(x.shape), x.dtype)


def _index_add(xp, x, idx, src, dim, alpha=1):
    out = x.copy()
    if x.ndim == 0:
        return out + src * alpha
    d = normalize_dim(dim, x.ndim)
    flat = idx.reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= x.shape[d]):
        raise TensorIndexError("index out of range in self")
    add_at(xp, out, (slice(None),) * d + (flat,), src * alpha if alpha != 1 else src)
    return out


index_add = defop("index_add", infer=_index_add_meta,
                  grad_name=edges_of("IndexAddBackward0", (0, 2)),
                  save=(1,))(_index_add)


@index_add.def_backward
def _(ctx, g):
    (idx,) = ctx.saved
    alpha = ctx.attrs.get("alpha", 1)
    gs = None
    if ctx.needs[2]:
        gs = g._op("index_select", g, idx, dim=ctx.attrs["dim"])
        gs = gs * alpha if alpha != 1 else gs
    return g, gs


# -- masks -----------------------------------------------------------------------------------
def _mask(name: str, mask) -> None:
    if not hasattr(mask, "shape") or mask.dtype is not bool_:
        got = TORCH_SCALAR_NAMES[mask.dtype.name] if hasattr(mask, "dtype") else "number"
        raise InvalidArgumentError(
            f"{name} only supports boolean masks, but got mask with dtype {got.lower()}")


def _masked_fill_meta(x, mask, value):
    _mask("masked_fill_", mask)
    if hasattr(value, "shape") and len(value.shape):
        raise InvalidArgumentError(
            "masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
            f"{len(value.shape)} dimension(s).")
    return Meta(broadcast_shapes(x.shape, mask.shape), x.dtype)


_MASKED_FILL = edges_of("MaskedFillBackward1", (0, 2)), edges_of("MaskedFillBackward0", (0,))
masked_fill = defop("masked_fill", infer=_masked_fill_meta, save=(1,),
                    grad_name=lambda x, m, v: _MASKED_FILL[0] if hasattr(v, "shape")
                    else _MASKED_FILL[1])(
    lambda xp, x, mask, value: xp.where(mask, value, x).astype(x.dtype, copy=False))


@masked_fill.def_backward
def _(ctx, g):
    (mask,) = ctx.saved
    needs = input_needs(ctx, 3)
    gx = g._op("masked_fill", g, mask, 0.0) if needs[0] else None
    gv = None
    if needs[2]:
        gv = (g - g._op("masked_fill", g, mask, 0.0)).sum()
    return to_edges(ctx, (gx, None, gv))


def _masked_select_meta(x, mask):
    _mask("masked_select:", mask)
    broadcast_shapes(x.shape, mask.shape)
    return Meta(None, x.dtype)


def _masked_select(xp, x, mask):
    xb, mb = xp.broadcast_arrays(x, mask)
    return xb[mb]


masked_select = defop("masked_select", infer=_masked_select_meta,
                      grad_name=edges_of("MaskedSelectBackward0", (0,)),
                      save=(1,))(_masked_select)


@masked_select.def_backward
def _(ctx, g):
    (mask,) = ctx.saved
    shape = broadcast_shapes(ctx.in_shapes[0], tuple(mask.shape))
    zeros = g._op("zeros", shape=shape, dtype=g.dtype.name, device=g.device)
    mask = mask.expand(shape) if tuple(mask.shape) != shape else mask
    return (zeros._op("index_put", zeros, g, mask, key=(("mask", 0, len(shape)),)),)


defop("nonzero", infer=lambda a: Meta(None, int64))(lambda xp, a: xp.argwhere(a))


def _unique_meta(a, sorted=True, dim=None):
    if dim is None:
        return Meta(None, a.dtype), Meta(tuple(a.shape), int64), Meta(None, int64)
    d = normalize_dim(dim, len(a.shape))
    return Meta(None, a.dtype), Meta((a.shape[d],), int64), Meta(None, int64)


def _unique(xp, a, sorted=True, dim=None):
    if dim is None:
        values, inverse, counts = xp.unique(a, return_inverse=True, return_counts=True)
        return values, inverse.reshape(a.shape), counts
    d = normalize_dim(dim, a.ndim)
    values, inverse, counts = xp.unique(a, return_inverse=True, return_counts=True, axis=d)
    return values, inverse.reshape(-1), counts


no_derivative(defop("unique", infer=_unique_meta, grad_name="Unique2Backward0")(_unique),
              "_unique2")


def _repeat_index_meta(repeats):
    _int_index("repeat_interleave", repeats)
    if len(repeats.shape) > 1:
        raise InvalidArgumentError("repeat_interleave only accept 1D vector as repeat")
    return Meta(None, int64)


def _repeat_index(xp, repeats):
    flat = repeats.reshape(-1)
    if flat.size and flat.min() < 0:
        raise InvalidArgumentError("repeats can not be negative")
    # position k repeats flat[k] times: the output's j-th entry is the first k whose running
    # total passes j (searchsorted, which both array libraries have for array counts)
    ends = xp.cumsum(flat)
    total = int(ends[-1]) if flat.size else 0
    return xp.searchsorted(ends, xp.arange(total), side="right").astype(repeats.dtype)


# torch.repeat_interleave(repeats): the index that repeats each position its count of times
defop("repeat_interleave", infer=_repeat_index_meta)(_repeat_index)


# -- triangles -------------------------------------------------------------------------------
def _triangle(name: str):
    def infer(a, diagonal=0):
        if len(a.shape) < 2:
            raise InvalidArgumentError(f"{name}: input tensor must have at least 2 dimensions")
        return Meta(tuple(a.shape), a.dtype)

    def forward(xp, a, diagonal=0):
        rows, cols = a.shape[-2:]
        keep = xp.tri(rows, cols, diagonal, dtype=bool)  # the lower triangle, diagonal k
        return xp.where(keep if name == "tril" else ~xp.tri(rows, cols, diagonal - 1,
                                                             dtype=bool), a, xp.zeros((), a.dtype))

    op = defop(name, infer=infer, grad_name=name.capitalize() + "Backward0")(forward)
    op.def_backward(lambda ctx, g: (g._op(name, g, diagonal=ctx.attrs.get("diagonal", 0)),))
    return op


_triangle("tril")
_triangle("triu")
