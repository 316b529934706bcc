"""More shape ops. Views: split, split_with_sizes, unbind (several outputs each), narrow,
diagonal. Copies: flip, roll, repeat.

A view op's shape rule gives every output's element strides (see core/layout): so both tensor
kinds know each output aliases its input, and an in-place change through one shows in the
others. Outputs of split and unbind come from one node with several outputs; torch forbids
modifying them in place while autograd records (checked in `_meta.check_inplace`).

    >>> from gradserve import engine
    >>> a, b = engine.arange(5.0).requires_grad_().split(3)
    >>> a, b.grad_fn.name()
    (tensor([0., 1., 2.], grad_fn=<SplitBackward0>), 'SplitBackward0')
"""

from __future__ import annotations

from ...core.errors import InvalidArgumentError, TensorIndexError
from ...core.registry import Meta, defop
from ...core.shape import normalize_dim, normalize_dims
from ...surface.tensor_api import cat, stack


def _with_size(shape, d: int, n: int) -> tuple[int, ...]:
    shape = list(shape)
    shape[d] = n
    return tuple(shape)


def _zeros(g, shape):
    return g._op("zeros", shape=tuple(shape), dtype=g.dtype.name, device=g.device)


# -- split / unbind --------------------------------------------------------------------------
def split_sizes(length: int, split_size: int) -> list[int]:
    """torch.split's pieces of an int split_size (the last may be smaller)."""
    if split_size < 0 or (split_size == 0 and length):
        raise InvalidArgumentError(
            f"split_size can only be 0 if dimension size is 0, but got dimension size of "
            f"{length}" if split_size == 0 else "split expects split_size be non-negative, but "
            f"got split_size={split_size}")
    if length == 0:
        return [0]
    return [min(split_size, length - i) for i in range(0, length, split_size)]


def _pieces_meta(a, sizes, dim):
    if not a.shape:
        raise InvalidArgumentError("split expects at least a 1-dimensional tensor")
    d = normalize_dim(dim, len(a.shape))
    strides = a.stride()
    return tuple(Meta(_with_size(a.shape, d, n), a.dtype, strides) for n in sizes)


def _pieces(xp, a, sizes, dim):
    d = normalize_dim(dim, a.ndim)
    out, start = [], 0
    for n in sizes:
        out.append(a[(slice(None),) * d + (slice(start, start + n),)])
        start += n
    return tuple(out)


def _cat_back(ctx, grads):
    d = normalize_dim(ctx.attrs["dim"], len(ctx.in_shapes[0]))
    shape = ctx.in_shapes[0]
    like = next(iter(grads.values()))
    parts = [grads.get(i) if grads.get(i) is not None else _zeros(like, _with_size(
        shape, d, n)) for i, n in enumerate(_sizes_of(ctx, shape[d]))]
    return (cat(parts, d),)


def _sizes_of(ctx, length):
    if ctx.op.name == "split":
        return split_sizes(length, ctx.attrs["split_size"])
    return ctx.attrs["sizes"]


split = defop("split", grad_name="SplitBackward0", view=True, multi_grad=True,
              infer=lambda a, split_size, dim=0: _pieces_meta(
                  a, split_sizes(a.shape[normalize_dim(dim, max(len(a.shape), 1))]
                                 if a.shape else 0, split_size), dim))(
    lambda xp, a, split_size, dim=0: _pieces(xp, a, split_sizes(a.shape[normalize_dim(
        dim, a.ndim)], split_size), dim))
split.def_backward(_cat_back)


def _sizes_meta(a, sizes, dim=0):
    if not a.shape:
        raise InvalidArgumentError("split_with_sizes expects at least a 1-dimensional tensor")
    d = normalize_dim(dim, len(a.shape))
    if sum(sizes) != a.shape[d] or any(n < 0 for n in sizes):
        raise InvalidArgumentError(
            f"split_with_sizes expects split_sizes to sum exactly to {a.shape[d]} (input "
            f"tensor's size at dimension {d}), but got split_sizes={list(sizes)}")
    return _pieces_meta(a, sizes, dim)


split_with_sizes = defop("split_with_sizes", infer=_sizes_meta, view=True, multi_grad=True,
                         grad_name="SplitWithSizesBackward0")(_pieces)
split_with_sizes.def_backward(_cat_back)


def _unbind_meta(a, dim=0):
    if not a.shape:
        raise TensorIndexError("Dimension specified as 0 but tensor has no dimensions")
    d = normalize_dim(dim, len(a.shape))
    shape = tuple(a.shape[:d]) + tuple(a.shape[d + 1:])
    strides = a.stride()
    strides = tuple(strides[:d]) + tuple(strides[d + 1:])
    return tuple(Meta(shape, a.dtype, strides) for _ in range(a.shape[d]))


unbind = defop("unbind", infer=_unbind_meta, grad_name="UnbindBackward0", view=True,
               multi_grad=True)(
    lambda xp, a, dim=0: tuple(a[(slice(None),) * normalize_dim(dim, a.ndim) + (i,)]
                               for i in range(a.shape[normalize_dim(dim, a.ndim)])))


@unbind.def_backward
def _(ctx, grads):
    shape = ctx.in_shapes[0]
    d = normalize_dim(ctx.attrs.get("dim", 0), len(shape))
    like = next(iter(grads.values()))
    part = tuple(shape[:d]) + tuple(shape[d + 1:])
    return (stack([grads.get(i) if grads.get(i) is not None else _zeros(like, part)
                   for i in range(shape[d])], d),)


# -- narrow / diagonal -----------------------------------------------------------------------
def _narrow_range(a, dim, start, length):
    d = normalize_dim(dim, max(len(a.shape), 1))
    size = a.shape[d]
    if not -size <= start <= size:
        raise TensorIndexError(f"start out of range (expected to be in range of [{-size}, "
                               f"{size}], but got {start})")
    start = start % size if size and start < 0 else start
    if length < 0 or start + length > size:
        raise InvalidArgumentError(
            f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return d, start


def _narrow_meta(a, dim, start, length):
    if not a.shape:
        raise InvalidArgumentError("narrow() cannot be applied to a 0-dim tensor.")
    d, _ = _narrow_range(a, dim, start, length)
    return Meta(_with_size(a.shape, d, length), a.dtype, a.stride())


def _narrow(xp, a, dim, start, length):
    d, start = _narrow_range(a, dim, start, length)
    return a[(slice(None),) * d + (slice(start, start + length),)]


def _through_view(name: str):
    """The gradient of a view op: g laid into zeros of the input's shape where the view
    reads (view_scatter, which is differentiable)."""
    def backward(ctx, g):
        zeros = _zeros(g, ctx.in_shapes[0])
        return (zeros._op("view_scatter", zeros, g, steps=((name, ctx.attrs, 0),)),)

    return backward


narrow = defop("narrow", infer=_narrow_meta, grad_name="SliceBackward0", view=True)(_narrow)
narrow.def_backward(_through_view("narrow"))


def _diag_dims(a, offset, dim1, dim2):
    n = len(a.shape)
    d1, d2 = normalize_dim(dim1, n), normalize_dim(dim2, n)
    if d1 == d2:
        raise InvalidArgumentError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    s1, s2 = a.shape[d1], a.shape[d2]
    length = max(0, min(s1, s2 - offset) if offset >= 0 else min(s1 + offset, s2))
    return d1, d2, length


def _diagonal_meta(a, offset=0, dim1=0, dim2=1):
    d1, d2, length = _diag_dims(a, offset, dim1, dim2)
    st = a.stride()
    keep = [i for i in range(len(a.shape)) if i not in (d1, d2)]
    return Meta(tuple(a.shape[i] for i in keep) + (length,), a.dtype,
                tuple(st[i] for i in keep) + (st[d1] + st[d2],))


def _diagonal(xp, a, offset=0, dim1=0, dim2=1):
    # laid over a's memory by strides rather than xp.diagonal, which numpy makes read-only:
    # in-place ops through the view (and its backward's view_scatter) write into it
    d1, d2, length = _diag_dims(a, offset, dim1, dim2)
    first = [slice(None)] * a.ndim  # start at the offset's first element
    first[d2 if offset >= 0 else d1] = slice(abs(offset), None)
    start = a[tuple(first)]
    keep = [i for i in range(a.ndim) if i not in (d1, d2)]
    return xp.lib.stride_tricks.as_strided(
        start, tuple(a.shape[i] for i in keep) + (length,),
        tuple(start.strides[i] for i in keep) + (start.strides[d1] + start.strides[d2],))


diagonal = defop("diagonal", infer=_diagonal_meta, grad_name="DiagonalBackward0", view=True)(
    _diagonal)
diagonal.def_backward(_through_view("diagonal"))


def _diagonal_copy_meta(a, offset=0, dim1=0, dim2=1):
    return Meta(_diagonal_meta(a, offset, dim1, dim2).shape, a.dtype)


# torch.diag of a matrix: the diagonal as a new tensor, torch's diagonal_copy (one node, named
# DiagonalBackward0_copy), whose gradient is the view's
diagonal_copy = defop("diagonal_copy", infer=_diagonal_copy_meta,
                      grad_name="DiagonalBackward0_copy")(
    lambda xp, a, offset=0, dim1=0, dim2=1: _diagonal(xp, a, offset, dim1, dim2).copy())
diagonal_copy.def_backward(_through_view("diagonal"))


# -- copies: flip, roll, repeat --------------------------------------------------------------
def _flip_meta(a, dims):
    dims = tuple(dims)
    normalize_dims(dims, max(len(a.shape), 1)) if dims else ()
    return Meta(tuple(a.shape), a.dtype)


def _flip(xp, a, dims):
    if not (a.ndim and dims):
        return a.copy()
    flipped = normalize_dims(dims, a.ndim)  # a reversed view; the dispatcher makes it a copy
    return a[tuple(slice(None, None, -1) if i in flipped else slice(None)
                   for i in range(a.ndim))]


flip = defop("flip", infer=_flip_meta, grad_name="FlipBackward0")(_flip)
flip.def_backward(lambda ctx, g: (g.flip(ctx.attrs["dims"]),))


def _roll_meta(a, shifts, dims=None):
    if dims is not None:
        if len(shifts) != len(dims):
            raise InvalidArgumentError(f"shifts and dimensions must align. shifts: {len(shifts)}"
                                       f", dims:{len(dims)}")
        for d in dims:
            normalize_dim(d, max(len(a.shape), 1))
    elif len(shifts) != 1:
        raise InvalidArgumentError("roll: shifts must be one number when dims is not given")
    return Meta(tuple(a.shape), a.dtype)


def _roll(xp, a, shifts, dims=None):
    if a.ndim == 0:
        return a.copy()
    if dims is None:
        return xp.roll(a, shifts[0])
    return xp.roll(a, tuple(shifts), tuple(normalize_dim(d, a.ndim) for d in dims))


roll = defop("roll", infer=_roll_meta, grad_name="RollBackward0")(_roll)
roll.def_backward(lambda ctx, g: (g._op("roll", g, shifts=tuple(-s for s in ctx.attrs["shifts"]),
                                        dims=ctx.attrs.get("dims")),))


def _repeat_meta(a, sizes):
    if len(sizes) < len(a.shape):
        raise InvalidArgumentError("Number of dimensions of repeat dims can not be smaller than "
                                   "number of dimensions of tensor")
    if any(r < 0 for r in sizes):
        raise InvalidArgumentError(f"Trying to create tensor with negative dimension "
                                   f"{min(sizes)}: {list(sizes)}")
    lead = len(sizes) - len(a.shape)
    shape = tuple(sizes[:lead]) + tuple(r * n for r, n in zip(sizes[lead:], a.shape,
                                                             strict=True))
    return Meta(shape, a.dtype)


repeat = defop("repeat", infer=_repeat_meta, grad_name="RepeatBackward0")(
    lambda xp, a, sizes: xp.tile(a, tuple(sizes)) if sizes else a.copy())


@repeat.def_backward
def _(ctx, g):
    shape, sizes = tuple(ctx.in_shapes[0]), tuple(ctx.attrs["sizes"])
    lead = len(sizes) - len(shape)
    split = list(sizes[:lead])
    for r, n in zip(sizes[lead:], shape, strict=True):
        split += [r, n]
    reps = tuple(range(lead)) + tuple(lead + 2 * i for i in range(len(shape)))
    return (g.reshape(split).sum(reps) if reps else g.reshape(shape),)
