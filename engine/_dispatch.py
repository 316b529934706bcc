"""Running registered ops on engine tensors: compute, then the shared bookkeeping.

`apply` and `apply_inplace` are the engine's halves of each op: they place it, run its
forward on the device's array module and wrap the results; what the op means for autograd
(views, graph nodes, in-place checks and history) comes from `_meta`, the same functions the
client's proxies call.
"""

from __future__ import annotations

from collections.abc import Callable

from ._backend import backend, writable
from ._errors import MIXED_KINDS, AutogradError, InvalidArgumentError, TensorIndexError
from ._meta import (
    AutogradMeta,
    check_inplace,
    commit_inplace,
    inplace_node,
    mark_views,
    placement,
    record,
    records,
    set_history,
)
from ._random import current_generator
from ._registry import Meta, OpDef
from ._tensor import Tensor


def _finish(xp, arr, meta: Meta, op: OpDef):
    if not isinstance(arr, xp.ndarray):
        arr = xp.asarray(arr)
    want = meta.dtype.np
    if arr.dtype is not want and arr.dtype != want:  # builtin numpy dtypes are singletons
        arr = arr.astype(want)
    if arr.shape != meta.shape:
        raise AutogradError(
            f"internal error in op {op.name}: computed shape {arr.shape}, inferred {meta.shape}"
        )
    if meta.strides is None and not arr.flags.c_contiguous:
        # a fresh result is contiguous, as its shape rule (and so the client) assumes
        arr = xp.ascontiguousarray(arr)
    return arr


def _output(xp, arr, meta: Meta, op: OpDef, device: str) -> Tensor:
    # a view keeps the strides its shape rule gave (as the client's proxy does); anything
    # else was made contiguous by _finish
    return Tensor._result(_finish(xp, arr, meta, op), device, meta.dtype, meta.strides)


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


def _args(inputs) -> list:
    return [x._data if isinstance(x, Tensor) else _not_remote(x) for x in inputs]


def _not_remote(x):
    if isinstance(x, AutogradMeta):
        raise InvalidArgumentError(MIXED_KINDS)
    return x


def _run(op: OpDef, be, args, attrs: dict):
    kw = {**attrs, "gen": be.draws(current_generator())} if op.random else attrs
    try:
        return op.forward(be.xp, *args, **kw)
    except TensorIndexError:
        raise
    except IndexError as e:  # other data-dependent checks (loss targets) surface here
        raise TensorIndexError(f"{op.name}: {e}") from None


def apply(op: OpDef, inputs: tuple, attrs: dict, check: Callable | None = None):
    """Run `op` on `inputs` (tensors and Python scalars) and record it for autograd.

    `check(meta)`, when given, sees the inferred outputs before anything is allocated (the
    server checks byte limits and output counts there)."""
    device, any_grad = placement(inputs, attrs.get("device", "cpu"))
    meta = op.infer(*inputs, **attrs)
    dynamic = meta.shape is None if type(meta) is Meta else unknown_shape(meta)
    if check is not None and not dynamic:
        check(meta)
    be = backend(device)
    token = be.enter()  # the op's device is current while its arrays are made and finished
    try:
        out = _run(op, be, _args(inputs), attrs)
        if dynamic:  # the shape depends on the data (nonzero, masks): now it is known
            meta = known_shape(meta, out)
            if check is not None:
                check(meta)
        out_device = attrs["device"] if op.needs_device else device
        xp = be.xp if out_device == device else backend(out_device).xp
        if type(meta) is Meta:
            result = _output(xp, out, meta, op, out_device)
            outputs, metas = (result,), (meta,)
        else:
            outputs = tuple(_output(xp, a, m, op, out_device)
                            for a, m in zip(out, meta, strict=True))
            result, metas = outputs, meta
    finally:
        be.exit(token)
    if op.view:
        mark_views(op, inputs[0], outputs, metas, attrs)
    if records(op, any_grad, meta):
        set_history(outputs, record(op, inputs, attrs, device, meta), op)
    return result


def apply_inplace(op: OpDef, self: Tensor, others: tuple, attrs: dict) -> Tensor:
    """Run `op(self, *others)` and write the result into self's storage, as torch's `op_`."""
    recorded = check_inplace(op, self, others, attrs)  # the result's meta, if recorded
    target = self._data
    if not writable(target):
        raise InvalidArgumentError("the tensor's memory is read-only; clone() it first")
    device, _ = placement((self, *others), self._device)
    be = backend(device)
    token = be.enter()  # a snapshot of the old value is a copy made on the device too
    try:
        if recorded is None and op.forward_into is not None:
            # nothing to record: write straight into storage (an optimizer step)
            op.forward_into(be.xp, target, *_args(others), **attrs)
            self._vc.value += 1
            return self
        node = None if recorded is None else inplace_node(op, self, others, attrs, recorded)
        target[...] = _run(op, be, [target, *_args(others)], attrs)
    finally:
        be.exit(token)
    commit_inplace(op, self, node)
    return self
