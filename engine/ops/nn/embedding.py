"""Lookup and layout ops for models: embedding, one_hot and pad.

`embedding(weight, indices)` picks rows; its gradient `embedding_grad` sums rows back (a
bincount, so repeated indices add up on numpy and cupy alike) and leaves `padding_idx`'s
row at zero. `pad` pads the last dims like torch.nn.functional.pad; for mode "constant" its
gradient is `pad` with the amounts negated (a crop), for the other modes each padded dim is
a 0/1 matrix product whose adjoint is `pad_grad`.

    >>> from gradserve import engine
    >>> w = engine.tensor([[0., 0.], [1., 2.], [3., 4.]])
    >>> w._op("embedding", w, engine.tensor([2, 1, 2]), padding_idx=None)
    tensor([[3., 4.],
            [1., 2.],
            [3., 4.]])
"""

from __future__ import annotations

import numpy as np

from ...core.dtype import int64
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ..edges import edges_of

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# -- embedding --------------------------------------------------------------------------------
def _embedding_meta(weight, indices, *, padding_idx=None):
    if len(weight.shape) != 2:
        raise InvalidArgumentError("'weight' must be 2-D")
    if indices.dtype.kind != 1:
        raise InvalidArgumentError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar "
            f"types: Long, Int; but got {indices.dtype.name} instead")
    return Meta(tuple(indices.shape) + (weight.shape[1],), weight.dtype)


def _check_range(xp, indices, rows):
    if indices.size and bool(xp.any((indices < 0) | (indices >= rows))):
        raise IndexError("index out of range in self")


def _embedding(xp, weight, indices, *, padding_idx=None):
    _check_range(xp, indices, weight.shape[0])
    return weight[indices]


embedding = defop("embedding", infer=_embedding_meta,
                  grad_name=edges_of("EmbeddingBackward0", (0,)),  # none for the indices
                  save=(1,))(_embedding)


@embedding.def_backward
def _(ctx, g):
    (indices,) = ctx.saved
    return (g._op("embedding_grad", g, indices, num_weights=ctx.in_shapes[0][0],
                  padding_idx=ctx.attrs.get("padding_idx")),)


def _embedding_grad_meta(g, indices, *, num_weights, padding_idx=None):
    return Meta((num_weights, g.shape[-1]), g.dtype)


def _embedding_grad(xp, g, indices, *, num_weights, padding_idx=None):
    dim = g.shape[-1]
    rows = indices.reshape(-1, 1) * dim + xp.arange(dim)
    summed = xp.bincount(rows.reshape(-1), weights=g.reshape(-1), minlength=num_weights * dim)
    out = summed.astype(g.dtype).reshape(num_weights, dim)
    if padding_idx is not None:
        out[padding_idx] = 0
    return out


embedding_grad = defop("embedding_grad", infer=_embedding_grad_meta,
                       grad_name="EmbeddingBackwardBackward0", save=(1,))(_embedding_grad)


@embedding_grad.def_backward
def _(ctx, gg):
    (indices,) = ctx.saved
    picked = gg._op("embedding", gg, indices)
    pad = ctx.attrs.get("padding_idx")
    if pad is not None:  # the padding row was zeroed: no gradient reaches what fed it
        picked = picked * (indices != pad).unsqueeze(-1)
    return (picked, None)


# -- one_hot ----------------------------------------------------------------------------------
def _one_hot_meta(indices, *, num_classes):
    if indices.dtype is not int64:
        raise InvalidArgumentError("one_hot is only applicable to index tensor of type "
                                   "LongTensor.")
    if num_classes < 0:
        raise InvalidArgumentError("one_hot: num_classes must be known (>= 0) here")
    return Meta(tuple(indices.shape) + (num_classes,), int64)


def _one_hot(xp, indices, *, num_classes):
    if indices.size and bool(xp.any((indices < 0) | (indices >= num_classes))):
        raise IndexError("Class values must be smaller than num_classes." if bool(
            xp.all(indices >= 0)) else "Class values must be non-negative.")
    return (indices[..., None] == xp.arange(num_classes)).astype(xp.int64)


defop("one_hot", infer=_one_hot_meta)(_one_hot)


# -- pad --------------------------------------------------------------------------------------
def _pairs(pad, ndim):
    """torch's flat pad list (last dim first) as (lo, hi) per dim of the tensor."""
    if len(pad) % 2:
        raise InvalidArgumentError("Padding length must be divisible by 2")
    if len(pad) // 2 > ndim:
        raise InvalidArgumentError("Padding length should be less than or equal to two times "
                                   "the input dimension")
    pairs = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        pairs[ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return pairs


def _pad_shape(shape, pad, mode):
    pairs = _pairs(pad, len(shape))
    out = []
    for n, (lo, hi) in zip(shape, pairs, strict=True):
        if mode == "reflect" and (lo >= n or hi >= n) and (lo or hi):
            raise InvalidArgumentError(
                f"Argument #4: Padding size should be less than the corresponding input "
                f"dimension, but got: padding ({lo}, {hi}) at dimension of input {n}")
        if mode in ("replicate", "circular") and (lo or hi) and n == 0:
            raise InvalidArgumentError(f"{mode} padding of an empty dimension")
        if mode != "constant" and (lo < 0 or hi < 0):
            raise InvalidArgumentError("negative padding is only supported in constant mode")
        if n + lo + hi < 0:
            raise InvalidArgumentError(f"The input size {n}, plus negative padding {lo} and "
                                       f"{hi} resulted in a negative output size")
        out.append(n + lo + hi)
    return tuple(out)


def _pad_meta(x, *, pad, mode="constant", value=0.0):
    if mode not in ("constant", *_NP_MODES):
        raise InvalidArgumentError(f"Unrecognised padding mode {mode}")
    return Meta(_pad_shape(x.shape, pad, mode), x.dtype)


def _index_map(size, lo, hi, mode):
    """For one dim: the input index each output position copies."""
    return np.pad(np.arange(size), (lo, hi), mode=_NP_MODES[mode])


def _pad(xp, x, *, pad, mode="constant", value=0.0):
    pairs = _pairs(pad, x.ndim)
    if mode == "constant":
        crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(x.shape, pairs,
                                                                                strict=True))
        x = x[crop]
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
        return xp.pad(x, widths, mode="constant", constant_values=value)
    for axis, (lo, hi) in enumerate(pairs):
        if lo or hi:
            x = xp.take(x, xp.asarray(_index_map(x.shape[axis], lo, hi, mode)), axis=axis)
    return x


def _pad_name(x, *, pad, mode="constant", value=0.0):
    if mode == "constant":
        return "ConstantPadNdBackward0"
    n = len(pad) // 2
    return {"reflect": f"ReflectionPad{n}DBackward0",
            "replicate": f"ReplicationPad{n}DBackward0"}.get(mode, "CircularPadBackward0")


pad_op = defop("pad", infer=_pad_meta, grad_name=_pad_name)(_pad)


@pad_op.def_backward
def _(ctx, g):
    pad, mode = ctx.attrs["pad"], ctx.attrs.get("mode", "constant")
    if mode == "constant":
        return (g._op("pad", g, pad=tuple(-p for p in pad), mode="constant", value=0.0),)
    return (g._op("pad_grad", g, pad=pad, mode=mode, input_shape=tuple(ctx.in_shapes[0])),)


def _pad_grad_meta(g, *, pad, mode, input_shape):
    return Meta(tuple(input_shape), g.dtype)


def _pad_grad(xp, g, *, pad, mode, input_shape):
    pairs = _pairs(pad, g.ndim)
    for axis, ((lo, hi), size) in enumerate(zip(pairs, input_shape, strict=True)):
        if lo or hi:
            # sum output positions into the input index they copied: a (out, in) 0/1 matrix
            src = _index_map(size, lo, hi, mode)
            m = np.zeros((len(src), size), dtype=g.dtype)
            m[np.arange(len(src)), src] = 1
            g = xp.moveaxis(xp.moveaxis(g, axis, -1) @ xp.asarray(m), -1, axis)
    return g


pad_grad = defop("pad_grad", infer=_pad_grad_meta, grad_name="PadBackwardBackward0")(_pad_grad)


@pad_grad.def_backward
def _(ctx, gg):
    return (gg._op("pad", gg, pad=ctx.attrs["pad"], mode=ctx.attrs["mode"]),)
