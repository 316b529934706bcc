"""Adaptive max pooling (torch's `adaptive_max_pool1d/2d/3d`, with `return_indices`).

Window i of n over a length L spans [floor(i L / n), ceil((i + 1) L / n)), so windows may
differ in size and overlap. As max pooling, it is two ops: `adaptive_max_pool_indices` (no
gradient) finds each window's first maximum as a flat index into the input's spatial plane
(torch's indices), and `adaptive_max_pool(x, indices)` gathers them, under torch's grad_fn
(`AdaptiveMaxPool2DBackward0`, one edge). Its gradient scatters back through
`max_pool_grad`, whose gradient gathers again, so double backward works. Unbatched input
(C, *S) is taken as torch takes it.

    >>> from gradserve import engine
    >>> x = engine.arange(9.).reshape(1, 1, 3, 3)
    >>> i = x._op("adaptive_max_pool_indices", x, output_size=(2, 2))
    >>> i
    tensor([[[[4, 5],
              [7, 8]]]])
    >>> x._op("adaptive_max_pool", x, i, dims=2)
    tensor([[[[4., 5.],
              [7., 8.]]]])
"""

from __future__ import annotations

import itertools
import math

from ...core.dtype import int64
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ..edges import edges_of


def _check(x, output_size, name="adaptive_max_pool2d"):
    nd = len(output_size)
    if len(x.shape) not in (nd + 1, nd + 2) or any(n == 0 for n in x.shape[-nd - 1:]):
        raise InvalidArgumentError(
            f"{name}(): Expected {nd + 1}D or {nd + 2}D tensor, but got: {list(x.shape)}")
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError(f'"adaptive_max_pool{nd}d" not implemented for '
                                   f"'{x.dtype.name.capitalize()}'")
    if any(int(o) <= 0 for o in output_size):
        raise InvalidArgumentError(f"{name}(): output_size must be positive, got "
                                   f"{list(output_size)}")
    return nd


def _indices_meta(x, *, output_size):
    nd = _check(x, output_size)
    return Meta(tuple(x.shape[:-nd]) + tuple(int(o) for o in output_size), int64)


def _indices(xp, x, *, output_size):
    nd = len(output_size)
    lead, spatial = x.shape[:-nd], x.shape[-nd:]
    flat_lead = math.prod(lead)
    out = xp.empty((flat_lead,) + tuple(output_size), dtype=xp.int64)
    xs = x.reshape((flat_lead,) + tuple(spatial))
    for cell in itertools.product(*(range(o) for o in output_size)):
        bounds = [((i * s) // o, -(-(i + 1) * s // o))
                  for i, s, o in zip(cell, spatial, output_size, strict=True)]
        win = xs[(slice(None),) + tuple(slice(a, b) for a, b in bounds)]
        rest = xp.argmax(win.reshape(flat_lead, -1), axis=-1)  # the first maximum, as torch
        flat = 0
        for k in reversed(range(nd)):  # window coordinates -> the input plane's flat index
            lo, hi = bounds[k]
            flat = flat + (rest % (hi - lo) + lo) * math.prod(spatial[k + 1:])
            rest = rest // (hi - lo)
        out[(slice(None),) + cell] = flat
    return out.reshape(tuple(lead) + tuple(output_size))


adaptive_max_pool_indices = defop("adaptive_max_pool_indices", infer=_indices_meta,
                                  attrs=("output_size",))(_indices)


def _gather_meta(x, indices, *, dims):
    if indices.dtype is not int64 or len(indices.shape) != len(x.shape) or \
            tuple(indices.shape[:-dims]) != tuple(x.shape[:-dims]):
        raise InvalidArgumentError("adaptive_max_pool: indices must be int64 shaped "
                                   "(*batch, *output_size)")
    return Meta(tuple(indices.shape), x.dtype)


def _gather(xp, x, indices, *, dims):
    lead = x.shape[:-dims]
    flat = x.reshape(lead + (-1,))
    return xp.take_along_axis(flat, indices.reshape(lead + (-1,)), axis=-1).reshape(
        indices.shape)


_NAMES = {nd: edges_of(f"AdaptiveMaxPool{nd}DBackward0", (0,)) for nd in (2, 3)}
adaptive_max_pool = defop("adaptive_max_pool", infer=_gather_meta, save=(1,),
                          grad_name=lambda x, i, *, dims: _NAMES[dims],
                          attrs=("dims",))(_gather)


def _batched(t, dims: int):
    """(N, C, *S) for max_pool_grad: an unbatched (C, *S) gets a batch dim of 1."""
    return t.unsqueeze(0) if len(t.shape) == dims + 1 else t


@adaptive_max_pool.def_backward
def _(ctx, g):
    (indices,) = ctx.saved
    dims, shape = ctx.attrs["dims"], tuple(ctx.in_shapes[0])
    unbatched = len(shape) == dims + 1
    gx = _batched(g, dims)._op("max_pool_grad", _batched(g, dims), _batched(indices, dims),
                               input_shape=((1,) + shape) if unbatched else shape)
    return (gx.squeeze(0) if unbatched else gx,)
