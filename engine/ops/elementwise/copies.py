"""where, copies and casts (clone, to, fill, copy): forward, backward and shape rule."""

from __future__ import annotations

from ...core.backend import to_device
from ...core.dtype import (
    as_dtype,
    bool_,
    result_type,
)
from ...core.errors import InvalidArgumentError
from ...core.layout import iterated, preserved
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from ...surface.tensor_api import where
from ..edges import edges_of, input_needs, to_edges, zeros_like
from .arithmetic import _shape, operand


# -- where, copies, casts ---------------------------------------------------------------------
def _where_meta(c, a, b) -> Meta:
    operand(c), operand(a), operand(b)
    if not hasattr(c, "shape") or c.dtype is not bool_:
        raise InvalidArgumentError("where expected condition to be a boolean tensor")
    shape, dtype = broadcast_shapes(c.shape, _shape(a), _shape(b)), result_type(a, b)
    return Meta(shape, dtype, iterated(shape, (c, a, b), dtype, own=0))


# the condition has no edge in torch's node
where_op = defop("where", infer=_where_meta, grad_name=edges_of("WhereBackward0", (1, 2)),
                 save=(0,))(
    lambda xp, c, a, b: xp.where(c, a, b)
)


@where_op.def_backward
def _(ctx, g):
    (c,) = ctx.saved
    return (where(c, g, 0.0) if ctx.needs[1] else None,
            where(c, 0.0, g) if ctx.needs[2] else None)


def _clone_meta(a, contiguous=False) -> Meta:
    # torch's clone() keeps a's layout (preserve_format, `preserved`); `contiguous()` and
    # reshape's copy are clone(memory_format=contiguous_format)
    return Meta(a.shape, a.dtype, None if contiguous else preserved(a.shape, a._strides))


clone = defop("clone", infer=_clone_meta, grad_name="CloneBackward0", attrs=("contiguous",))(
    lambda xp, a, contiguous=False: a.copy("C" if contiguous else "K"))


@clone.def_backward
def _(ctx, g):
    return (g,)


def _to_meta(a, dtype, device) -> Meta:
    # torch's _to_copy allocates empty_like(a) (preserve_format): a's layout, `preserved`
    return Meta(a.shape, as_dtype(dtype), preserved(a.shape, a._strides))


def _to(xp, a, dtype, device):
    # cast where the data is (the op's device is current), then move; the result is new
    # storage even when neither changes
    moved = to_device(xp, a.astype(as_dtype(dtype).np, copy=False), device)
    return moved.copy() if moved is a else moved


to = defop("to", infer=_to_meta, grad_name="ToCopyBackward0", needs_device=True,
           attrs=("dtype", "device"))(_to)


@to.def_backward
def _(ctx, g):
    return (g.to(dtype=ctx.in_dtypes[0], device=ctx.device),)


def _fill_meta(a, value, zero=False, wrapped=False) -> Meta:
    operand(value)
    if hasattr(value, "shape") and len(value.shape):
        raise InvalidArgumentError(
            "fill_ only supports 0-dimension value tensor but got tensor with "
            f"{len(value.shape)} dimensions."
        )
    return Meta(a.shape, a.dtype)


# torch's overloads: fill_(Scalar) and zero_() have an edge to self only, fill_(Tensor) one
# to the value too; `x[key] = number` (`wrapped`) copies the number as a tensor, as torch does,
# so its node keeps the value's (None) edge
_FILL_NUMBER = edges_of("FillBackward2", (0,))
_ZERO = edges_of("ZeroBackward0", (0,))


def _fill_name(a, value, zero=False, wrapped=False) -> str:
    if zero:
        return _ZERO
    return "FillBackward3" if wrapped or hasattr(value, "shape") else _FILL_NUMBER


fill = defop("fill", infer=_fill_meta, grad_name=_fill_name)(
    lambda xp, a, value, zero=False, wrapped=False: xp.full_like(a, value)
)


@fill.def_backward
def _(ctx, g):
    needs = input_needs(ctx, 2)
    return to_edges(ctx, (zeros_like(g) if needs[0] else None, g.sum() if needs[1] else None))


def _copy_meta(a, src) -> Meta:
    if not hasattr(src, "shape"):
        raise InvalidArgumentError("copy_ expects a tensor as source")
    broadcast_shapes(a.shape, src.shape)
    if broadcast_shapes(a.shape, src.shape) != tuple(a.shape):
        raise InvalidArgumentError(
            f"output with shape {list(a.shape)} doesn't match the broadcast shape "
            f"{list(broadcast_shapes(a.shape, src.shape))}"
        )
    return Meta(a.shape, a.dtype)


def _copy(xp, a, src):
    return xp.broadcast_to(src, a.shape).astype(a.dtype, copy=True)


copy = defop("copy", infer=_copy_meta, grad_name="CopyBackwards")(_copy)


@copy.def_backward
def _(ctx, g):
    return (zeros_like(g) if ctx.needs[0] else None, g)
