"""The one sequence that records an op, for both tensor kinds.

An op on tensors always goes the same way: place it (the inputs' shared device), infer its
outputs' shapes and dtypes from its shape rule, make the outputs, mark the ones that alias
their input as views, and give them a graph node when autograd records it. An in-place op:
torch's checks, placement, a node for the old value, the write, then the history rewrite.

What differs between the tensor kinds is only how outputs come to be and where the write
happens, so that is what a `TensorKind` supplies: the engine's computes them on the device
(`surface/tensor.py`), the client's gives them ids and queues the op for its server
(`client/_record.py`). Everything else, and so every error a torch user expects at the
offending line, happens here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from . import grad_mode as _grad_mode
from .meta import (
    check_inplace,
    commit_inplace,
    inplace_node,
    mark_views,
    placement,
    record,
    set_history,
)
from .registry import Meta, OpDef


class TensorKind(Protocol):
    """How one kind of tensor makes an op's outputs and performs an in-place write."""

    def default_device(self, attrs: dict) -> str:
        """Where an op without tensor inputs (a factory) runs."""

    def outputs(self, op: OpDef, inputs: tuple, attrs: dict, device: str, meta,
                check: Callable | None) -> tuple[tuple, object]:
        """The op's output tensors and their metas (with data-dependent shapes filled in
        where the kind knows them); `check(meta)` sees the metas before anything is made."""

    # After the bookkeeping, `emit(op, inputs, outputs, attrs, metas)`: the client queues the
    # op. None for a kind with nothing to do then (the engine's): no call per op.
    emit: Callable | None

    def write(self, op: OpDef, target, others: tuple, attrs: dict, device: str,
              recorded: bool) -> None:
        """Write `op(target, *others)` into target (`recorded`: autograd keeps a node)."""


def unknown_shape(meta) -> bool:
    """Whether an inferred result has a shape that depends on the data (Meta(None, ...))."""
    if type(meta) is Meta:
        return meta.shape is None
    return any(m.shape is None for m in meta)


def known_shape(meta, out):
    """The inferred meta with the computed results' shapes filled in."""
    if type(meta) is Meta:
        return meta._replace(shape=tuple(out.shape))
    return tuple(m._replace(shape=tuple(a.shape)) if m.shape is None else m
                 for m, a in zip(meta, out, strict=True))


def apply(kind: TensorKind, op: OpDef, inputs: tuple, attrs: dict,
          check: Callable | None = None):
    """Run or record `op(*inputs, **attrs)` on tensors of `kind`; one output, or a tuple."""
    device, any_grad = placement(inputs, None)
    if device is None:  # no tensor inputs: a factory
        device = kind.default_device(attrs)
    meta = op.infer(*inputs, **attrs) if attrs else op.infer(*inputs)
    outputs, meta = apply_known(kind, op, inputs, attrs, device, any_grad, meta, check)
    return outputs[0] if type(meta) is Meta else outputs


def apply_known(kind: TensorKind, op: OpDef, inputs: tuple, attrs: dict, device: str,
                any_grad: bool, meta, check: Callable | None = None) -> tuple:
    """The rest of `apply` once the shape rule's result `meta` is known (a captured step's
    prepared run knows it already): the outputs as a tuple, and their meta(s)."""
    outputs, meta = kind.outputs(op, inputs, attrs, device, meta, check)
    metas = (meta,) if type(meta) is Meta else meta
    if op.view:
        mark_views(op, inputs[0], outputs, metas, attrs)
    # A graph node when an input needs grad, the op is differentiable, grad mode is on and
    # the (first) output is floating point
    if any_grad and op.differentiable and _grad_mode._state.enabled and (
            metas[0].dtype.is_floating_point):
        set_history(outputs, record(op, inputs, attrs, device, meta), op)
    emit = kind.emit
    if emit is not None:
        emit(op, inputs, outputs, attrs, metas)
    return outputs, meta


def apply_inplace(kind: TensorKind, op: OpDef, self, others: tuple, attrs: dict):
    """`self.op_(*others)`, as torch's in-place ops: checks, the write, the new history."""
    recorded = check_inplace(op, self, others, attrs)  # the result's meta, if recorded
    write_checked(kind, op, self, others, attrs, recorded)
    return self


def write_checked(kind: TensorKind, op: OpDef, self, others: tuple, attrs: dict,
                  recorded) -> None:
    """The rest of `apply_inplace` once torch's checks passed with the outcome `recorded`
    (the result's meta when autograd records the op, else None)."""
    device, _ = placement((self, *others), self._device)
    node = None if recorded is None else inplace_node(op, self, others, attrs, recorded)
    kind.write(op, self, others, attrs, device, recorded is not None)
    commit_inplace(op, self, node)
