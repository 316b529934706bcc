"""The engine's Tensor and the dispatcher that runs registered ops on it."""

from __future__ import annotations

import weakref

import numpy as np

from . import _grad_mode
from ._api import TensorAPI
from ._autograd import AccumulateGrad, Node, SavedTensor, run_backward
from ._backend import backend
from ._dtype import TORCH_SCALAR_NAMES, DType, as_dtype, from_numpy_dtype
from ._errors import AutogradError, InvalidArgumentError, TensorIndexError
from ._random import current_generator
from ._registry import Meta, OpDef, get_op

_NO_GRAD_VIEW = (
    "A view was created in no_grad mode and is being modified inplace with grad mode enabled. "
    "Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify "
    "your code by moving both the view and the inplace either both inside the no_grad block "
    "(if you don't want the inplace to be tracked) or both outside (if you want the inplace "
    "to be tracked)."
)


class _Version:
    """The version counter; views and detach() share one, `.data` gets a fresh one."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class Tensor(TensorAPI):
    """An n-dimensional array that records the ops applied to it for autograd."""

    __slots__ = ("_data", "dtype", "_device", "_rg", "_grad_fn", "_output_nr", "_vc", "_base",
                 "_view_steps", "_view_version", "_grad", "_retains_grad", "_acc", "__weakref__")

    def __init__(self, data, device: str = "cpu", requires_grad: bool = False,
                 dtype: DType | None = None) -> None:
        self._data = data
        # a plain attribute, not a property over _data: shape rules read it on every op
        self.dtype: DType = dtype or from_numpy_dtype(data.dtype)
        self._device = device
        self._rg = False
        self._grad_fn = None
        self._output_nr = 0
        self._vc = _Version()
        # A view made by view ops: its root tensor, the ((op, attrs), ...) that made it from
        # the root (None when made under no_grad) and the version its history belongs to.
        self._base = None
        self._view_steps = None
        self._view_version = 0
        self._grad = None
        self._retains_grad = False
        self._acc = None
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _wrap(cls, data, device: str) -> Tensor:
        return cls(data, device)

    # -- metadata --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def device(self) -> str:
        return self._device

    @property
    def is_cuda(self) -> bool:
        return self._device != "cpu"

    @property
    def grad_fn(self):
        """The Node that made this tensor (None for leaves).

        A view whose base changed in place since its history was recorded gets its history
        rebuilt from the base's current one, as torch does, so gradients flow through the
        in-place op.
        """
        if self._view_steps is not None and self._view_version != self._vc.value:
            self._refresh_view_history()
        return self._grad_fn

    @grad_fn.setter
    def grad_fn(self, node) -> None:
        self._grad_fn = node

    def _refresh_view_history(self) -> None:
        fresh = replay_view(self._base, self._view_steps)
        self._grad_fn, self._output_nr = fresh._grad_fn, fresh._output_nr
        self._view_version = self._vc.value
        if self._retains_grad and self._grad_fn is not None:
            self._grad_fn.retain(self)

    @property
    def grad(self):
        self._warn_if_non_leaf_grad(self._grad is not None)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise InvalidArgumentError("assigned grad expected to be a Tensor or None")
            self._check_assigned_grad(value)
        self._grad = value

    def _start_retaining_grad(self) -> None:
        self.grad_fn.retain(self)

    def _accumulator(self) -> AccumulateGrad:
        # Held weakly, as torch does: the graph keeps it alive, and a leaf <-> accumulator
        # cycle would leave freeing the leaf's memory to the cyclic garbage collector.
        acc = self._acc() if self._acc is not None else None
        if acc is None:
            acc = AccumulateGrad(self)
            self._acc = weakref.ref(acc)
        return acc

    # -- aliasing --------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """A tensor with the same storage and version counter, outside the graph."""
        out = Tensor(self._data, self._device)
        out._vc = self._vc  # in-place changes through either are caught by backward
        return out

    def detach_(self) -> Tensor:
        if self._base is not None:
            raise AutogradError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn = None
        self._rg = False
        return self

    @property
    def data(self) -> Tensor:
        """Same storage, a fresh version counter: in-place changes through it go unnoticed."""
        return Tensor(self._data, self._device)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise InvalidArgumentError("data must be set to a Tensor")
        if value.device != self.device:
            raise InvalidArgumentError("data set to a tensor that requires gradients must match")
        self._data, self.dtype = value._data, value.dtype

    # -- values ----------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        self._check_numpy()
        return self._data

    def _host(self) -> np.ndarray:
        return backend(self._device).to_host(self._data)

    def item(self):
        if self._data.size != 1:
            raise InvalidArgumentError(
                f"a Tensor with {self._data.size} elements cannot be converted to Scalar"
            )
        return self._host().reshape(()).item()

    def tolist(self):
        return self._host().tolist()

    def __array__(self, dtype=None, copy=None):
        a = self._host()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        from ._format import format_tensor

        return format_tensor(self._host(), self.dtype, self._device, self._repr_suffix())

    def _repr_suffix(self) -> str:
        if self.grad_fn is not None:
            return f"grad_fn=<{self.grad_fn.name()}>"
        if self._rg:
            return "requires_grad=True"
        return ""

    # -- autograd --------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (or only into `inputs`)."""
        backward([self], None if gradient is None else [gradient], retain_graph,
                 create_graph, inputs)

    def __getitem__(self, key):
        return super().__getitem__(_scalar_indices_as_ints(key))

    # -- the two primitives of TensorAPI -----------------------------------------------------
    def _op(self, name, *inputs, **attrs):
        return apply(get_op(name), inputs, attrs)

    def _inplace(self, name, *others, **attrs):
        return apply_inplace(get_op(name), self, others, attrs)


def _check_grad_root(t: Tensor, g, i: int) -> Tensor:
    if g is None:
        if t._data.size != 1:
            raise AutogradError("grad can be implicitly created only for scalar outputs")
        if not t.dtype.is_floating_point:
            raise AutogradError(
                "grad can be implicitly created only for real scalar outputs but got "
                f"{t.dtype}"
            )
        return Tensor(backend(t._device).xp.ones_like(t._data), t._device)
    if not isinstance(g, Tensor):
        g = Tensor(backend(t._device).xp.asarray(g, dtype=t._data.dtype), t._device)
    if g.shape != t.shape:
        raise AutogradError(
            f"Mismatch in shape: grad_output[{i}] has a shape of {_torch_size(g.shape)} and "
            f"output[{i}] has a shape of {_torch_size(t.shape)}."
        )
    return g


def _scalar_indices_as_ints(key):
    """x[t] with 0-dim integer tensors alone indexes like x[int(t)] (a view), as in torch."""
    parts = key if isinstance(key, tuple) else (key,)
    advanced = [k for k in parts if isinstance(k, (Tensor, list))]
    if advanced and all(isinstance(k, Tensor) and k.ndim == 0 and k.dtype.kind == 1
                        for k in advanced):
        return tuple(k.item() if isinstance(k, Tensor) else k for k in parts)
    return key


def _check_grad_roots(tensors, grads) -> list:
    if len(grads) != len(tensors):
        raise AutogradError(f"got {len(tensors)} tensors and {len(grads)} gradients")
    return [_check_grad_root(t, g, i) for i, (t, g) in enumerate(zip(tensors, grads,
                                                                      strict=True))]


def _torch_size(shape) -> str:
    return f"torch.Size([{', '.join(map(str, shape))}])"


def _as_list(x):
    if x is None:
        return None
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """torch.autograd.backward: accumulate gradients of `tensors` into the graph's leaves."""
    tensors = _as_list(tensors)
    grads = _as_list(grad_tensors) or [None] * len(tensors)
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            raise AutogradError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
    grads = _check_grad_roots(tensors, grads)
    if retain_graph is None:
        retain_graph = create_graph
    inputs = _as_list(inputs)
    if inputs is not None and not inputs:
        raise AutogradError("`inputs` argument to `backward()` cannot be empty.")
    run_backward(tensors, grads, retain_graph=retain_graph, create_graph=create_graph,
                 inputs=inputs)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """torch.autograd.grad: the gradients of `outputs` w.r.t. `inputs`, without touching .grad."""
    outputs = _as_list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = _as_list(inputs)
    grads = _as_list(grad_outputs) or [None] * len(outputs)
    for i, t in enumerate(outputs):
        if not t.requires_grad:
            raise AutogradError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
    grads = _check_grad_roots(outputs, grads)
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph,
                          inputs=inputs, accumulate=False)
    unused = [k for k, r in enumerate(result) if r is None]
    if unused and not allow_unused:
        raise AutogradError(
            f"The differentiated Tensor at index {unused[0]} appears to not have been used in "
            "the graph. Set allow_unused=True if this is the desired behavior."
        )
    if not create_graph:
        result = [None if r is None else r.detach() for r in result]
    return tuple(result) if not single else (result[0],)


# -- dispatch ---------------------------------------------------------------------------------
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
    return arr


def apply(op: OpDef, inputs: tuple, attrs: dict):
    """Run `op` on `inputs` (tensors and Python scalars) and record it for autograd."""
    # One pass over the inputs: the device they share, their arrays, whether any needs grad.
    # This is the per-op hot path, so it reads slots directly instead of properties.
    device = None
    any_grad = False
    args = []
    for x in inputs:
        if isinstance(x, Tensor):
            if device is None:
                device = x._device
            elif x._device != device:
                raise InvalidArgumentError(
                    "Expected all tensors to be on the same device, but found at least two "
                    f"devices, {device} and {x._device}!"
                )
            if not any_grad:
                any_grad = x._rg or (x._grad_fn if x._view_steps is None else x.grad_fn) \
                    is not None
            args.append(x._data)
        else:
            args.append(x)
    if device is None:
        device = attrs.get("device", "cpu")
    meta = op.infer(*inputs, **attrs)
    be = backend(device)
    kw = {**attrs, "gen": current_generator()} if op.random else attrs
    try:
        out = be.run(op.forward, args, kw)
    except TensorIndexError:
        raise
    except IndexError as e:  # other data-dependent checks (loss targets) surface here
        raise TensorIndexError(f"{op.name}: {e}") from None
    out_device = attrs["device"] if op.needs_device else device
    xp = be.xp if out_device == device else backend(out_device).xp

    if type(meta) is Meta:
        result = Tensor(_finish(xp, out, meta, op), out_device, dtype=meta.dtype)
        outputs = (result,)
    else:
        outputs = tuple(Tensor(_finish(xp, a, m, op), out_device, dtype=m.dtype)
                        for a, m in zip(out, meta, strict=True))
        result = outputs

    if op.view:
        _mark_views(op, inputs[0], outputs, attrs, be.xp)

    if any_grad and op.differentiable and _grad_mode.is_grad_enabled():
        head = outputs[0]
        if head._data.dtype.kind != "f":
            return result
        head._grad_fn = node = _record(op, inputs, attrs, device)
        if op.save_output:
            node._saved_output = SavedTensor(head, output_nr=0)
    return result


def _record(op: OpDef, inputs: tuple, attrs: dict, device: str) -> Node:
    """The graph node for one op: edges to the inputs' nodes and the tensors backward reads."""
    edges, shapes, dtypes = [], [], []
    for x in inputs:
        if isinstance(x, Tensor):
            data = x._data
            shapes.append(data.shape)
            dtypes.append(data.dtype)
            fn = x._grad_fn if x._view_steps is None else x.grad_fn
            if fn is not None:
                edges.append((fn, x._output_nr))
            elif x._rg:
                edges.append((x._accumulator(), 0))
            else:
                edges.append(_NO_EDGE)
        else:
            shapes.append(None)
            dtypes.append(None)
            edges.append(_NO_EDGE)
    which = op.saved_indices(len(inputs))
    saved = tuple([SavedTensor(inputs[i]) if isinstance(inputs[i], Tensor) else inputs[i]
                   for i in which]) if which else ()
    # shapes and dtypes stay lists: only backward reads them, and a tuple is one more object
    # per op for the cyclic collector to walk
    return Node(op, op.node_name(inputs, attrs), tuple(edges), shapes, dtypes,
                saved, attrs, device)


_NO_EDGE = (None, 0)


def _mark_views(op: OpDef, src: Tensor, outputs, attrs: dict, xp) -> None:
    """Outputs that alias src share its version counter; differentiable views also remember
    their root and the view ops that lead there, for in-place ops through them."""
    for o in outputs:
        if not xp.may_share_memory(o._data, src._data):
            continue  # e.g. reshape of a non-contiguous tensor had to copy
        o._vc = src._vc
        if not op.differentiable:  # detach: an alias outside the graph
            continue
        o._base = src._base if src._base is not None else src
        if _grad_mode.is_grad_enabled() and (src._base is None or src._view_steps is not None):
            o._view_steps = (src._view_steps or ()) + ((op.name, attrs),)
            o._view_version = o._vc.value


def replay_view(base: Tensor, steps) -> Tensor:
    """Apply a view's recorded view ops to its base again: the view with the base's history."""
    out = base
    with _grad_mode.enable_grad():
        for name, attrs in steps:
            out = apply(get_op(name), (out,), attrs)
    return out


def _snapshot(t: Tensor, copy: bool) -> Tensor:
    """A stand-in for t in the graph: t's history, with its data (copied when backward will
    read the old value, which the in-place write is about to overwrite)."""
    out = Tensor(t._data.copy() if copy else t._data, t._device)
    out._rg, out._grad_fn, out._output_nr, out._acc = t._rg, t.grad_fn, t._output_nr, t._acc
    return out


def _check_inplace_target(op: OpDef, self: Tensor, others: tuple, attrs: dict) -> None:
    meta = op.infer(self, *others, **attrs)
    if meta.shape != self.shape:
        raise InvalidArgumentError(
            f"output with shape {list(self.shape)} doesn't match the broadcast shape "
            f"{list(meta.shape)}"
        )
    if meta.dtype is not self.dtype and meta.dtype.rank > self.dtype.rank:
        raise InvalidArgumentError(
            f"result type {TORCH_SCALAR_NAMES[meta.dtype.name]} can't be cast to the desired "
            f"output type {TORCH_SCALAR_NAMES[self.dtype.name]}"
        )
    arr = self._data
    if any(st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape, strict=True)):
        raise InvalidArgumentError(
            "unsupported operation: more than one element of the written-to tensor refers to a "
            "single memory location. Please clone() the tensor before performing the operation."
        )
    if isinstance(arr, np.ndarray) and not arr.flags.writeable:
        raise InvalidArgumentError("the tensor's memory is read-only; clone() it first")


def apply_inplace(op: OpDef, self: Tensor, others: tuple, attrs: dict) -> Tensor:
    """Run `op(self, *others)` and write the result into self's storage, as torch's `op_`.

    Recorded like torch: self takes the op's node as its grad_fn, reading its old value from
    a snapshot. Through a view, the base gets a CopySlices node (view_scatter: the old base
    with the view's region replaced) and the view's own history is rebuilt from the base's.
    """
    grad_on = _grad_mode.is_grad_enabled()
    if grad_on and self._rg and self.grad_fn is None:
        raise AutogradError(
            "a leaf Variable that requires grad is being used in an in-place operation."
        )
    _check_inplace_target(op, self, others, attrs)
    record = grad_on and op.differentiable and (
        self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)
    )
    base = self._base
    if record and base is not None:
        if base._rg and base.grad_fn is None:
            raise AutogradError(
                "a view of a leaf Variable that requires grad is being used in an in-place "
                "operation."
            )
        if self._view_steps is None:
            raise AutogradError(_NO_GRAD_VIEW)
    if not record and op.forward_into is not None:
        args = [o._data if isinstance(o, Tensor) else o for o in others]
        for o in others:
            if isinstance(o, Tensor) and o._device != self._device:
                raise InvalidArgumentError(
                    "Expected all tensors to be on the same device, but found at least two "
                    f"devices, {self._device} and {o._device}!"
                )
        backend(self._device).run(op.forward_into, (self._data, *args), attrs)
        self._vc.value += 1
        return self
    source = self
    if record:
        source = _snapshot(self, copy=0 in op.saved_indices(1 + len(others)))
    out = apply(op, (source, *others), attrs)
    new_base = None
    if record and base is not None and out.grad_fn is not None:
        new_base = apply(get_op("view_scatter"), (_snapshot(base, copy=False), out),
                         {"steps": self._view_steps})
    self._data[...] = out._data
    self._vc.value += 1
    if record and out.grad_fn is not None:
        if self._retains_grad:  # .grad follows the tensor's newest value, as torch
            old = source._grad_fn
            if old is not None and old._retained:
                old._retained.pop(source._output_nr, None)
        if new_base is not None:  # self's history is rebuilt from base's on its next use
            base._grad_fn, base._output_nr = new_base._grad_fn, 0
        else:
            self._grad_fn, self._output_nr = out._grad_fn, 0
            if self._retains_grad:
                out._grad_fn.retain(self)
        if op.save_output:
            out._grad_fn._saved_output = SavedTensor(self, output_nr=0)
    return self


def to_tensor(data, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """engine.tensor(): copy `data` (nested lists, numbers, numpy arrays) into a new leaf."""
    if isinstance(data, Tensor):
        data = data._host()
    if dtype is not None:
        dtype = as_dtype(dtype)
    try:
        arr = np.array(data, dtype=None if dtype is None else dtype.np)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(
            f"could not build a tensor from {type(data).__name__}: {e}"
        ) from None
    if dtype is None:
        # numpy input keeps its dtype (as torch.tensor); Python numbers get the defaults
        arr = _numpy_cast(arr) if isinstance(data, (np.ndarray, np.generic)) else _default_cast(arr)
    if requires_grad and arr.dtype.kind != "f":
        raise AutogradError(
            "Only Tensors of floating point and complex dtype can require gradients"
        )
    be = backend(device)
    return Tensor(be.from_host(arr), device, requires_grad=requires_grad)


def _numpy_cast(arr: np.ndarray) -> np.ndarray:
    try:
        return arr.astype(as_dtype(arr.dtype).np, copy=False)
    except InvalidArgumentError:
        return _default_cast(arr)


def _default_cast(arr: np.ndarray) -> np.ndarray:
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(np.float32, copy=False)  # torch.tensor's default float
    if kind in "iu":
        return arr.astype(np.int64, copy=False)
    if kind == "b":
        return arr
    raise InvalidArgumentError(f"can't build a tensor from values of numpy type {arr.dtype}")
