"""The engine's Tensor (the autograd bookkeeping of `AutogradMeta`, torch's methods of
`TensorAPI`, and an array) and the engine's tensor kind: how an op's outputs are computed on
the device for the core's one op sequence (`core/dispatch.py`), and the engine's factories.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

import numpy as np

from ..core import dispatch, tape
from ..core.accumulate import addable
from ..core.backend import _CPU, backend, writable
from ..core.dtype import DType, from_numpy_dtype
from ..core.errors import AutogradError, InvalidArgumentError, TensorIndexError
from ..core.grad_mode import _state as _grad_state
from ..core.layout import laid_out, of_array
from ..core.meta import AutogradMeta, check_inplace, mark_views, record, set_history
from ..core.random import current_generator, manual_seed, state_generator
from ..core.registry import Meta, OpDef, get_op
from ..core.size import Size
from .factories import FactoryAPI
from .format import format_tensor, shown
from .grad_api import engine_backward, engine_grad
from .tensor_api import TensorAPI


class Tensor(AutogradMeta, TensorAPI):
    """An n-dimensional array that records the ops applied to it for autograd."""

    __slots__ = ("_data", "_grad", "_shape")
    _kind = "engine"

    def __init__(self, data, device: str = "cpu", requires_grad: bool = False,
                 dtype: DType | None = None) -> None:
        self._init_meta(dtype or from_numpy_dtype(data.dtype), device, of_array(data))
        self._data = data
        self._shape = Size(data.shape)
        self._grad = None
        if requires_grad:
            self.requires_grad = True

    # -- metadata --------------------------------------------------------------------------
    # made once with the tensor (see core/size.py); read through a C getter, not a Python
    # frame: shape rules read it several times per op
    shape = property(attrgetter("_shape"), doc="The tensor's size, a gradserve.Size.")

    def _saved_data(self):
        return self._data

    @classmethod
    def _from_saved(cls, data, device: str, dtype: DType) -> Tensor:
        """A node's saved output, rebuilt when backward unpacks it (`__init__` without the
        requires_grad it never has: per saved output per backward)."""
        t = _new(cls)
        t._init_meta(dtype, device, of_array(data))
        t._data = data
        t._shape = Size(data.shape)
        t._grad = None
        return t

    def _relayout(self, name: str, attrs: dict, meta: Meta) -> None:
        """An in-place view op's change of layout (surface/inplace_views.py): the array
        becomes the op's view of itself."""
        be = backend(self._device)
        with be.activate():  # made on the tensor's own device
            self._data = get_op(name).forward(be.xp, self._data, **attrs)
        self._shape = Size(meta.shape)

    def _snapshot(self, copy: bool) -> Tensor:
        """A stand-in for self in the graph: its history, with its data (copied when backward
        will read the old value, which an in-place write is about to overwrite)."""
        data = self._data
        if copy:
            with backend(self._device).activate():  # the copy is made on the tensor's device
                data = data.copy()
        out = Tensor(data, self._device, dtype=self.dtype)
        out._rg, out._grad_fn, out._output_nr, out._acc = (self._rg, self.grad_fn,
                                                          self._output_nr, self._acc)
        return out

    # -- .grad -----------------------------------------------------------------------------
    @property
    def grad(self):
        g = self._grad
        if g is None:  # the non-leaf warning is for a missing grad only
            self._warn_if_non_leaf_grad(False)
        return g

    def _grad_accepts_add(self) -> bool:
        """Whether backward may add into .grad in place (see core/accumulate._accumulate)."""
        g = self._grad
        return g is not None and not g.requires_grad and addable(g._data)

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise InvalidArgumentError("assigned grad expected to be a Tensor or None")
            self._check_assigned_grad(value)
        self._grad = value

    # -- aliasing --------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """A tensor with the same storage and version counter, outside the graph."""
        return self._op("detach", self)

    @property
    def data(self) -> Tensor:
        """Same storage, a fresh version counter: in-place changes through it go unnoticed."""
        return self._op("data", self)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise InvalidArgumentError("data must be set to a Tensor")
        if value.device != self.device:
            raise InvalidArgumentError("data set to a tensor that requires gradients must match")
        self._data, self.dtype, self._strides = value._data, value.dtype, value._strides
        self._shape = value._shape

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
        part, cut = shown(self)
        return format_tensor(part._host(), self.dtype, self._device, self._repr_suffix(), cut)

    # -- autograd --------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (or only into `inputs`)."""
        engine_backward([self], None if gradient is None else [gradient], retain_graph,
                 create_graph, inputs)

    def __getitem__(self, key):
        return super().__getitem__(_scalar_indices_as_ints(key))

    def _record_function(self, node, inputs, outputs) -> None:
        """A custom Function's node was made (see core/function): nothing more to do here."""

    def _home(self):
        return ENGINE

    # -- the two primitives of TensorAPI -----------------------------------------------------
    def _op(self, name, *inputs, **attrs):
        return eager(get_op(name), inputs, attrs)

    def _inplace(self, name, *others, **attrs):
        return eager_inplace(get_op(name), self, others, attrs)


def _scalar_indices_as_ints(key):
    """x[t] with 0-dim integer tensors alone indexes like x[int(t)] (a view), as in torch."""
    parts = key if isinstance(key, tuple) else (key,)
    advanced = [k for k in parts if isinstance(k, (Tensor, list))]
    if advanced and all(isinstance(k, Tensor) and k.ndim == 0 and k.dtype.kind == 1
                        for k in advanced):
        return tuple(k.item() if isinstance(k, Tensor) else k for k in parts)
    return key


# -- the engine's tensor kind: outputs computed on the device ---------------------------------
def _finish(xp, arr, meta: Meta, op: OpDef):
    """An op's computed array held to its shape rule's shape and dtype: a view keeps the
    strides its shape rule gave (as the client's proxy does); anything else is laid out as
    its shape rule (and so the client) says: contiguous, or the strides it gave (an
    elementwise op's, as torch's). A server's planned backward runs it on arrays that never
    become tensors."""
    if not isinstance(arr, xp.ndarray):
        arr = xp.asarray(arr)
    want = meta.dtype.np
    if arr.dtype is not want and arr.dtype != want:  # builtin numpy dtypes are singletons
        arr = arr.astype(want)
    if arr.shape != meta.shape:
        raise AutogradError(
            f"internal error in op {op.name}: computed shape {arr.shape}, inferred {meta.shape}"
        )
    strides = meta.strides
    if strides is None:
        if not arr.flags.c_contiguous:
            arr = xp.ascontiguousarray(arr)
    elif not op.view:  # a fresh result laid out as torch's (an elementwise op's)
        arr = laid_out(xp, arr, strides)
    return arr


def _wrap(arr, meta: Meta, device: str) -> Tensor:
    """`arr` (held to `meta` by `_finish`) as the tensor eager's op makes of it; no
    `__init__`: this runs per output of every op."""
    t = _new(Tensor)
    t._init_meta(meta.dtype, device, meta.strides)
    t._data = arr
    shape = meta.shape
    t._shape = shape if type(shape) is Size else Size(arr.shape)
    t._grad = None
    return t


def _output(xp, arr, meta: Meta, op: OpDef, device: str) -> Tensor:
    return _wrap(_finish(xp, arr, meta, op), meta, device)


_new = object.__new__
_tape_local = tape._local  # read inline per op: `tape.log()` without its call


def _args(inputs) -> list:
    return [x._data if isinstance(x, Tensor) else x for x in inputs]


def _run(op: OpDef, be, args, attrs: dict):
    if op.random:
        if attrs.get("generator"):
            return _run_on_state(op, be, args, attrs)
        attrs = {**attrs, "gen": be.draws(current_generator())}
    try:
        return op.forward(be.xp, *args, **attrs)
    except TensorIndexError:
        raise
    except IndexError as e:  # other data-dependent checks (loss targets) surface here
        raise TensorIndexError(f"{op.name}: {e}") from None


def _run_on_state(op: OpDef, be, args, attrs: dict):
    """A random op given `generator=`: its last input is the generator's state bytes, read
    before the op draws and written back after."""
    *args, state = args
    host = be.to_host(state)
    with state_generator(host) as gen:
        kw = {k: v for k, v in attrs.items() if k != "generator"}
        out = op.forward(be.xp, *args, **kw, gen=be.draws(gen))
    if host is not state:
        state[...] = be.from_host(host)
    return out


class EngineKind:
    """The engine's half of each op (see `core/dispatch.py`): compute on the device."""

    @staticmethod
    def default_device(attrs: dict) -> str:
        return attrs.get("device", "cpu")

    @staticmethod
    def outputs(op: OpDef, inputs: tuple, attrs: dict, device: str, meta, check):
        single = type(meta) is Meta
        dynamic = meta.shape is None if single else dispatch.unknown_shape(meta)
        if check is not None and not dynamic:
            check(meta)
        be = _CPU if device == "cpu" else backend(device)
        token = be.enter()  # the op's device is current while its arrays are made and finished
        try:
            out = _run(op, be, [x._data if isinstance(x, Tensor) else x for x in inputs],
                       attrs)
            if dynamic:  # the shape depends on the data (nonzero, masks): now it is known
                meta = dispatch.known_shape(meta, out)
                if check is not None:
                    check(meta)
            out_device = attrs["device"] if op.needs_device else device
            xp = be.xp if out_device == device else backend(out_device).xp
            if single:
                outputs = (_output(xp, out, meta, op, out_device),)
            else:
                outputs = tuple(_output(xp, a, m, op, out_device)
                                for a, m in zip(out, meta, strict=True))
        finally:
            be.exit(token)
        log = _tape_local.log
        if log is not None:  # watched (core/tape.py)
            log.append(None if dynamic else (op, inputs, attrs, device, meta, outputs))
        return outputs, meta

    emit = None  # computed already: nothing goes anywhere (dispatch skips the call)

    @staticmethod
    def write(op: OpDef, target: Tensor, others: tuple, attrs: dict, device: str,
              recorded: bool) -> None:
        data = target._data
        log = tape.log()
        if log is not None:  # an in-place write: no tape stands for it (core/tape.py)
            log.append(None)
        if not writable(data):
            raise InvalidArgumentError("the tensor's memory is read-only; clone() it first")
        be = backend(device)
        token = be.enter()
        try:
            if not recorded and op.forward_into is not None:
                # nothing to record: write straight into storage (an optimizer step)
                op.forward_into(be.xp, data, *_args(others), **attrs)
            else:
                data[...] = _run(op, be, [data, *_args(others)], attrs)
        finally:
            be.exit(token)


KIND = EngineKind()


def eager(op: OpDef, inputs: tuple, attrs: dict, check: Callable | None = None):
    """`dispatch.apply` with the engine's kind, in one frame for the usual op: tensor inputs
    on one device, one output whose shape the shape rule knows, not random, nobody watching
    the tape. The same steps in the same order (placement, shape rule, `check`, forward, the
    output held to its meta, views, the node) as the general sequence, which anything else
    goes through: per op, the calls between them were a third of its cost."""
    if op.random or op.needs_device or _tape_local.log is not None:
        return dispatch.apply(KIND, op, inputs, attrs, check)
    device = None
    any_grad = False
    recording = _grad_state.enabled  # else (a backward's ops) no input's grad is looked up
    args = []  # the forward's arguments, gathered here (a comprehension is a frame per op)
    for x in inputs:
        if isinstance(x, Tensor):
            if device is None:
                device = x._device
            elif x._device != device:
                return dispatch.apply(KIND, op, inputs, attrs, check)  # torch's error
            if recording and not any_grad:
                any_grad = x._rg or (x._grad_fn if x._view_steps is None else x.grad_fn) \
                    is not None
            args.append(x._data)
        elif isinstance(x, AutogradMeta):  # another kind's tensor: the general error
            return dispatch.apply(KIND, op, inputs, attrs, check)
        else:
            args.append(x)
    if device is None:  # a factory
        return dispatch.apply(KIND, op, inputs, attrs, check)
    meta = op.infer(*inputs, **attrs) if attrs else op.infer(*inputs)
    if type(meta) is not Meta or meta.shape is None:
        outputs, meta = dispatch.apply_known(KIND, op, inputs, attrs, device, any_grad, meta,
                                             check)
        return outputs[0] if type(meta) is Meta else outputs
    if check is not None:
        check(meta)
    be = _CPU if device == "cpu" else backend(device)
    xp = be.xp
    token = be.enter()
    try:
        try:
            arr = op.forward(xp, *args, **attrs)
        except TensorIndexError:
            raise
        except IndexError as e:  # as `_run`: data-dependent checks (loss targets)
            raise TensorIndexError(f"{op.name}: {e}") from None
        arr = _finish(xp, arr, meta, op)
    finally:
        be.exit(token)
    out = _wrap(arr, meta, device)
    if op.view:
        mark_views(op, inputs[0], (out,), (meta,), attrs)
    if any_grad and op.differentiable and _grad_state.enabled and meta.dtype.is_floating_point:
        set_history((out,), record(op, inputs, attrs, device, meta), op)
    return out


def eager_inplace(op: OpDef, self: Tensor, others: tuple, attrs: dict) -> Tensor:
    """`dispatch.apply_inplace` with the engine's kind; an op autograd does not record (an
    optimizer's update, a gradient added into .grad) on tensors of one device, with nobody
    watching the tape, writes in this frame: torch's checks, the write, the version."""
    recorded = check_inplace(op, self, others, attrs)
    if recorded is not None or _tape_local.log is not None:
        dispatch.write_checked(KIND, op, self, others, attrs, recorded)
        return self
    device = self._device
    args = []
    for x in others:
        if isinstance(x, Tensor):
            if x._device != device:
                dispatch.write_checked(KIND, op, self, others, attrs, None)  # torch's error
                return self
            args.append(x._data)
        elif isinstance(x, AutogradMeta):  # another kind's tensor: the general error
            dispatch.write_checked(KIND, op, self, others, attrs, None)
            return self
        else:
            args.append(x)
    data = self._data
    if not writable(data):
        raise InvalidArgumentError("the tensor's memory is read-only; clone() it first")
    be = _CPU if device == "cpu" else backend(device)
    token = be.enter()
    try:
        if op.forward_into is not None:
            op.forward_into(be.xp, data, *args, **attrs)
        else:
            data[...] = _run(op, be, [data, *args], attrs)
    finally:
        be.exit(token)
    self._vc.value += 1  # commit_inplace without a node: the new version
    return self


def apply(op: OpDef, inputs: tuple, attrs: dict, check: Callable | None = None):
    """Run `op` on engine tensors and Python scalars, recorded for autograd.

    `check(meta)`, when given, sees the inferred outputs before anything is allocated (the
    server checks byte limits and output counts there)."""
    return eager(op, inputs, attrs, check)


def apply_inplace(op: OpDef, self: Tensor, others: tuple, attrs: dict) -> Tensor:
    """Run `op(self, *others)` and write the result into self's storage, as torch's `op_`."""
    return eager_inplace(op, self, others, attrs)


# -- the engine's factories -------------------------------------------------------------------
class EngineFactories(FactoryAPI):
    """The in-process engine's factories (`engine.tensor`, `engine.zeros`, ...) and its
    autograd calls (what `backward` and `autograd.grad` run for engine tensors)."""

    def _default_device(self) -> str:
        return "cpu"

    def _make(self, name: str, requires_grad: bool, attrs: dict, inputs: tuple = ()):
        out = apply(get_op(name), inputs, attrs)
        return out.requires_grad_(True) if requires_grad else out

    def _leaf(self, arr: np.ndarray, device: str, requires_grad: bool):
        return get_op("tensor").run((arr,), {"device": device,
                                             "requires_grad": requires_grad})[0]

    def _shared_leaf(self, array: np.ndarray, requires_grad: bool):
        return Tensor(array, "cpu", requires_grad=requires_grad)

    def manual_seed(self, seed: int):
        """Seed the engine's default generator (torch.manual_seed).

        >>> _ = engine.manual_seed(0); a = engine.randn(3).tolist()
        >>> _ = engine.manual_seed(0); engine.randn(3).tolist() == a
        True
        """
        return manual_seed(seed)

    def _set_rng_state(self, state) -> None:
        get_op("set_rng_state").run((state,), {})

    _backward = staticmethod(engine_backward)
    _autograd_grad = staticmethod(engine_grad)


ENGINE = EngineFactories()
