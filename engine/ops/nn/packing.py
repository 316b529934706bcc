"""Packed sequences (torch.nn.utils.rnn.pack_padded_sequence): the padded batch's valid steps
gathered time-major into one (sum(lengths), *) tensor, as torch's `_pack_padded_sequence`,
with its node (PackPaddedSequenceBackward0, one edge); the backward scatters the gradient
back into a zero padded batch, and that scatter's own backward is the gather again, so
higher derivatives work.

`lengths` (an attr: host numbers, as torch's CPU lengths) are sorted in decreasing order by
the caller (the client's pack_padded_sequence reorders the batch first when they are not).

    >>> from gradserve import engine
    >>> x = engine.arange(6.0).reshape(3, 2)          # (T=3, B=2)
    >>> x._op("pack_padded_sequence", x, lengths=[3, 1])
    tensor([0., 1., 2., 4.])
"""

from __future__ import annotations

import numpy as np

from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ..edges import edges_of


def _check_lengths(shape, lengths, batch_first: bool) -> tuple[int, ...]:
    if len(shape) < 2:
        raise InvalidArgumentError(f"pack_padded_sequence: expected the input to have at least "
                                   f"2 dims (time and batch), got {len(shape)}")
    steps, batch = (shape[1], shape[0]) if batch_first else (shape[0], shape[1])
    lengths = tuple(int(n) for n in lengths)
    if len(lengths) != batch:
        raise InvalidArgumentError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                                   f"{len(lengths)} (batch_size={batch})")
    if lengths and lengths[-1] <= 0:
        raise InvalidArgumentError("Length of all samples has to be greater than 0, but found "
                                   "an element in 'lengths' that is <= 0")
    if any(a < b for a, b in zip(lengths, lengths[1:], strict=False)):
        raise InvalidArgumentError(
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
            "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
            "to sidestep this requirement if you do not need ONNX exportability.")
    if lengths and lengths[0] > steps:
        raise InvalidArgumentError(f"pack_padded_sequence: a length of {lengths[0]} is longer "
                                   f"than the input's {steps} time steps")
    return lengths


def packed_rows(lengths, batch: int, steps: int, batch_first: bool) -> np.ndarray:
    """The rows of the padded input (flattened over its time and batch dims) that the packed
    data holds, in packed order: time-major, the first batch_sizes[t] sequences at step t."""
    lengths = np.asarray(lengths, np.int64)
    t, b = np.nonzero(np.arange(int(lengths.max(initial=0)))[:, None] < lengths[None, :])
    return b * steps + t if batch_first else t * batch + b


def _pack_meta(x, *, lengths, batch_first=False):
    lengths = _check_lengths(tuple(x.shape), lengths, batch_first)
    return Meta((sum(lengths), *x.shape[2:]), x.dtype)


pack = defop("pack_padded_sequence", infer=_pack_meta,
             grad_name=edges_of("PackPaddedSequenceBackward0", (0,)),
             attrs=("lengths", "batch_first"))(
    lambda xp, x, *, lengths, batch_first=False: x.reshape(
        (x.shape[0] * x.shape[1], *x.shape[2:]))[xp.asarray(packed_rows(
            lengths, x.shape[1 - batch_first], x.shape[batch_first], batch_first))])


@pack.def_backward
def _(ctx, g):
    lengths, batch_first = ctx.attrs["lengths"], ctx.attrs.get("batch_first", False)
    return (g._op("pack_padded_sequence_backward", g, shape=tuple(ctx.in_shapes[0]),
                  lengths=lengths,
                  batch_first=batch_first),)


def _unpack_meta(g, *, shape, lengths, batch_first=False):
    lengths = _check_lengths(tuple(shape), lengths, batch_first)
    if tuple(g.shape) != (sum(lengths), *tuple(shape)[2:]):
        raise InvalidArgumentError(f"pack_padded_sequence_backward: a gradient of shape "
                                   f"{list(g.shape)} does not fit packed lengths {list(lengths)}")
    return Meta(tuple(shape), g.dtype)


@defop("pack_padded_sequence_backward", infer=_unpack_meta, grad_name="CopySlices",
       attrs=("shape", "lengths", "batch_first"))
def _unpack(xp, g, *, shape, lengths, batch_first=False):
    """The packed gradient scattered into a zero padded batch of `shape`."""
    out = xp.zeros((shape[0] * shape[1], *shape[2:]), g.dtype)
    out[xp.asarray(packed_rows(lengths, shape[1 - batch_first], shape[batch_first],
                               batch_first))] = g
    return out.reshape(tuple(shape))


@_unpack.def_backward
def _(ctx, gg):
    return (gg._op("pack_padded_sequence", gg, lengths=ctx.attrs["lengths"],
                   batch_first=ctx.attrs.get("batch_first", False)),)
