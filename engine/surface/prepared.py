"""Ops whose decisions were made once: what a server's plan of a captured step runs.

`dispatch.apply` decides, for every op, where it runs, what its shape rule gives, whether
autograd records it, and then computes. A step that repeats (server/_plan.py) asks the shape
rule once, when the step is captured, and keeps the result together with what it assumed of
the inputs (`signature`). When the inputs of a later run match, `apply_known` and
`apply_inplace_known` run the rest of the op sequence exactly as `dispatch.apply` and
`dispatch.apply_inplace` do (the same kind's `outputs`/`write`, so the same kernels, the same
views, nodes, saved tensors and version counters); only the shape rule (and for an in-place
op torch's checks, whose outcome the signature fixes) is not asked again.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core import dispatch
from ..core.meta import check_inplace, placement
from ..core.registry import Meta, OpDef
from .tensor import KIND, Tensor


def signature(x) -> tuple | None:
    """What an op's shape rule reads of a tensor input (its kind, device, dtype, shape and
    layout); None for anything that is not an engine tensor."""
    if type(x) is not Tensor:
        return None
    return (x._device, x.dtype, x._shape, x._strides)


def inplace_signature(x) -> tuple | None:
    """What torch's checks of an in-place op read of an input besides its shape: whether it
    requires grad, is a leaf, is a view."""
    if type(x) is not Tensor:
        return None
    return (x._device, x.dtype, x._shape, x._strides, x._rg, x.grad_fn is None,
            x._base is None)


def known_meta(op: OpDef, inputs: tuple, attrs: dict):
    """The shape rule's result for a step being captured, or None when the op cannot run
    from a kept one: a shape that depends on the data, or no tensor input (a factory, whose
    device comes from its attrs)."""
    meta = op.infer(*inputs, **attrs)
    if type(meta) is Meta:
        if meta.shape is None:
            return None
    elif any(m.shape is None for m in meta):
        return None
    if not any(type(x) is Tensor for x in inputs):
        return None
    return meta


def inplace_meta(op: OpDef, target, others: tuple, attrs: dict):
    """torch's checks of `target.op_(*others)` for a step being captured: the result's meta
    when autograd records it, else None (raises what the op would)."""
    return check_inplace(op, target, others, attrs)


def apply_known(op: OpDef, inputs: tuple, attrs: dict, meta,
                check: Callable | None = None) -> tuple:
    """`dispatch.apply` with the shape rule's result `meta` known; the outputs as a tuple."""
    device, any_grad = placement(inputs, None)
    return dispatch.apply_known(KIND, op, inputs, attrs, device, any_grad, meta, check)[0]


def apply_inplace_known(op: OpDef, target, others: tuple, attrs: dict, recorded) -> None:
    """`dispatch.apply_inplace` with torch's checks passed and their outcome `recorded` (the
    result's meta when autograd records the op, else None) known."""
    dispatch.write_checked(KIND, op, target, others, attrs, recorded)
