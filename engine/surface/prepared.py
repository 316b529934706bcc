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
from ..core import grad_mode as _grad_mode
from ..core import tape as _tape
from ..core.backend import _CPU, writable
from ..core.errors import TensorIndexError
from ..core.meta import check_inplace, mark_views, placement, record, set_history
from ..core.registry import Meta, OpDef
from .tensor import KIND, Tensor, _output, _wrap


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


def direct(op: OpDef, device: str) -> bool:
    """Whether `apply_direct` may run `op` on `device`: a plain kernel on the CPU (no draws
    from a generator, no device of its own), which the engine's kind computes with nothing
    around it but numpy's quiet floating point."""
    return device == "cpu" and not op.random and not op.needs_device and KIND.emit is None


def apply_direct(op: OpDef, inputs: tuple, attrs: dict, meta) -> tuple:
    """`apply_known` for an op `direct` allows, on inputs that are engine tensors on the
    CPU (their signatures were checked) or constants, while no tape watches (core/tape.py):
    the same kernel, outputs, views, node and saved tensors, without the dispatch's
    general steps (the placement check, the backend's lookup, the tape)."""
    any_grad = False
    args = []
    for x in inputs:
        if type(x) is Tensor:
            args.append(x._data)
            if not any_grad:
                any_grad = x._rg or (x._grad_fn if x._view_steps is None else x.grad_fn) \
                    is not None
        else:
            args.append(x)
    token = _CPU.enter()
    try:
        try:
            out = op.forward(_XP, *args, **attrs)
        except TensorIndexError:
            raise
        except IndexError as e:  # as the engine's kind says it (surface/tensor.py `_run`)
            raise TensorIndexError(f"{op.name}: {e}") from None
        if type(meta) is Meta:
            outputs = (_output(_XP, out, meta, op, "cpu"),)
            first = meta
        else:
            outputs = tuple(_output(_XP, a, m, op, "cpu") for a, m in zip(out, meta,
                                                                          strict=True))
            first = meta[0]
    finally:
        _CPU.exit(token)
    if op.view:
        mark_views(op, inputs[0], outputs, (meta,) if type(meta) is Meta else meta, attrs)
    if any_grad and op.differentiable and _grad_mode._state.enabled and (
            first.dtype.is_floating_point):
        set_history(outputs, record(op, inputs, attrs, "cpu", meta), op)
    return outputs


_XP = _CPU.xp


def stand_in(data, meta: Meta, device: str, node, output_nr: int) -> Tensor:
    """A tensor that is gone, as a planned backward reads it (server/_chain.py): its node
    and output number, its array (None when nobody kept it)."""
    t = _wrap(data, meta, device)
    t._grad_fn, t._output_nr = node, output_nr
    return t


def apply_inplace_known(op: OpDef, target, others: tuple, attrs: dict, recorded) -> None:
    """`dispatch.apply_inplace` with torch's checks passed and their outcome `recorded` (the
    result's meta when autograd records the op, else None) known.

    A write autograd does not record, whose kernel writes straight into storage
    (`forward_into`: an optimizer step), on the CPU as `direct` allows, while no tape
    watches, runs here: the same kernel and version bump as `EngineKind.write` and
    `commit_inplace` without a node, without the placement (every tensor on the CPU, as
    the inputs' checked signatures fix) and the backend's lookup."""
    data = target._data
    if recorded is None and op.forward_into is not None and target._device == "cpu" \
            and not op.random and not op.needs_device and KIND.emit is None \
            and _tape.log() is None and writable(data):
        args = []
        for x in others:
            if isinstance(x, Tensor):
                if x._device != "cpu":
                    break  # placement's error, from the general path
                args.append(x._data)
            else:
                args.append(x)
        else:
            token = _CPU.enter()
            try:
                op.forward_into(_XP, data, *args, **attrs)
            finally:
                _CPU.exit(token)
            target._vc.value += 1
            return
    dispatch.write_checked(KIND, op, target, others, attrs, recorded)
