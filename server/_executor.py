"""Running requests against a session: ops, session commands, backward, grad, fetch, upload.

Everything here is plain Python over the engine (no grpc): the servicer converts the wire
messages into the small dataclasses below and back. Each public `Executor` method runs on the
session's device worker (see `DeviceWorkers`) while the caller holds the session's lock, so
a session's requests run one at a time and in order.

An op either names a registry op (`engine.get_op`) or a session command (`COMMANDS`). Grad mode
is set explicitly for every op (it is thread-local in the engine and workers are shared), and
random ops draw from the session's own generator.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gradserve import engine
from gradserve.engine import GradserveError, InvalidArgumentError, Meta, Tensor
from gradserve.engine._backend import backend, canonical_device
from gradserve.engine._tensor import apply, apply_inplace

from ._errors import OpFailure, ResourceExhaustedError, TensorNotFoundError
from ._sessions import Session

log = logging.getLogger("gradserve.server")


# -- what the servicer hands in and gets back ------------------------------------------------
@dataclass(frozen=True)
class Ref:
    """An op input that names a tensor of the session."""

    id: str


@dataclass
class OpSpec:
    """One OpCall in plain Python. `error` is set when the call could not even be converted:
    it is raised when the op's turn comes, so the ops before it still run."""

    op: str
    inputs: tuple = ()
    outputs: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict)
    no_grad: bool = False
    inplace: bool = False
    data: np.ndarray | None = None
    site: str = ""
    error: Exception | None = None


@dataclass(frozen=True)
class TensorMeta:
    """What a caller may know about a bound tensor without its data."""

    id: str
    shape: tuple[int, ...]
    dtype: str
    device: str
    requires_grad: bool
    is_leaf: bool
    grad_fn: str
    version: int
    has_grad: bool


@dataclass
class BackwardAction:
    tensors: list[str]
    grad_tensors: list[str] = field(default_factory=list)
    retain_graph: bool | None = None
    create_graph: bool = False
    inputs: list[str] = field(default_factory=list)


@dataclass
class GradAction:
    outputs: list[str]
    inputs: list[str]
    results: list[str]
    grad_outputs: list[str] = field(default_factory=list)
    retain_graph: bool | None = None
    create_graph: bool = False
    allow_unused: bool = False


@dataclass
class FetchAction:
    ids: list[str]
    grad: bool = False


@dataclass
class ListAction:
    ids: list[str] = field(default_factory=list)


Action = BackwardAction | GradAction | FetchAction | ListAction


@dataclass
class StepResult:
    """What `Executor.step` did: the bound outputs, the action's result, and the first error
    (an OpFailure, or the action's own error) if any."""

    outputs: list[TensorMeta] = field(default_factory=list)
    result: Any = None
    error: Exception | None = None


# -- helpers --------------------------------------------------------------------------------
def tensor_meta(tid: str, t: Tensor) -> TensorMeta:
    """The TensorInfo facts of one tensor."""
    return TensorMeta(
        id=tid, shape=tuple(int(n) for n in t.shape), dtype=t.dtype.name, device=t.device,
        requires_grad=t.requires_grad, is_leaf=t.is_leaf,
        grad_fn="" if t.grad_fn is None else t.grad_fn.name(), version=t._version,
        has_grad=t._grad is not None,
    )


def tensor_bytes(tensors) -> int:
    """Bytes held by `tensors` and their grads, counting storage shared by views once."""
    seen: set[int] = set()
    total = 0
    for t in tensors:
        for arr in (t._data, None if t._grad is None else t._grad._data):
            if arr is None:
                continue
            root = arr
            while getattr(root, "base", None) is not None and hasattr(root.base, "nbytes"):
                root = root.base
            if id(root) not in seen:
                seen.add(id(root))
                total += int(root.nbytes)
    return total


def _meta_bytes(meta) -> int:
    metas = (meta,) if isinstance(meta, Meta) else meta
    return sum(int(np.prod(m.shape, dtype=object)) * m.dtype.itemsize for m in metas)


class _Budget:
    """The bytes one request may still allocate under its session's limit, so an op that
    cannot fit fails before it allocates (the exact check runs after the request)."""

    def __init__(self, session: Session, limit: int) -> None:
        self.session, self.limit = session, limit
        self.left = limit - tensor_bytes(session.tensors.values())

    def take(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise ResourceExhaustedError(
                f"{what} would make {nbytes} bytes, more than the {max(self.left, 0)} left "
                f"under session {self.session.id}'s limit of {self.limit} bytes "
                "(max-session-bytes)"
            )
        self.left -= nbytes


def user_error(exc: BaseException, op: str | None = None) -> BaseException:
    """What an op's failure means for the caller.

    Engine errors pass through. Anything else an op raises on input that came from the wire
    (a TypeError for a missing argument, a ValueError from numpy on a garbage attr) is the
    caller's mistake, so it becomes an InvalidArgumentError; running out of memory is a limit.
    """
    if isinstance(exc, (GradserveError, OpFailure)):
        return exc
    if isinstance(exc, MemoryError):
        return ResourceExhaustedError(f"out of memory: {exc or type(exc).__name__}")
    log.debug("op rejected with a non-engine error", exc_info=exc)
    if isinstance(exc, TypeError) and op is not None:
        # "_binary_meta() got an unexpected keyword argument 'x'": name the op, not the helper
        return InvalidArgumentError(_HELPER_NAME.sub(f"{op}()", str(exc), count=1))
    return InvalidArgumentError(f"invalid arguments: {type(exc).__name__}: {exc}")


_HELPER_NAME = re.compile(r"^(<lambda>|[\w.]+)\(\)")


def _expect(spec: OpSpec, inputs: tuple[int, int], outputs: tuple[int, int]) -> None:
    """Check a session command's input and output counts (inclusive ranges)."""
    for what, got, (lo, hi) in (("input", len(spec.inputs), inputs),
                                ("output id", len(spec.outputs), outputs)):
        if not lo <= got <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise InvalidArgumentError(f"'{spec.op}' takes {want} {what}(s), got {got}")


def _bool_attr(attrs: dict, name: str, default: bool) -> bool:
    value = attrs.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InvalidArgumentError(f"attr {name!r} must be true or false, got {value!r}")


# -- the executor ---------------------------------------------------------------------------
_SINGLE_OUTPUT: set[str] = set()  # ops whose shape rule returned one Meta: one output, always


class Executor:
    """Runs requests on sessions; `devices` are the devices this server serves."""

    def __init__(self, devices: Sequence[str], max_session_bytes: int | None = None) -> None:
        self.devices = tuple(devices)
        self.max_session_bytes = max_session_bytes if max_session_bytes else None

    # -- requests -------------------------------------------------------------------------
    def step(self, session: Session, ops: Sequence[OpSpec], release: Sequence[str] = (),
             action: Action | None = None, describe: bool = True) -> StepResult:
        """Run `ops` in order up to the first failure, drop `release`, then run `action`
        unless something failed. Errors are returned in the result, not raised. Without
        `describe`, `outputs` stays empty (the Pipeline does not echo them)."""
        out = StepResult()
        try:
            out.outputs = self._run_ops(session, ops, describe)
        except Exception as exc:
            out.error = user_error(exc)
        self.release(session, release)
        if out.error is None and action is not None:
            try:
                out.result = self._run_action(session, action)
            except Exception as exc:
                out.error = user_error(exc)
        session.nbytes = tensor_bytes(session.tensors.values())
        return out

    def run_ops(self, session: Session, ops: Sequence[OpSpec],
                release: Sequence[str] = ()) -> list[TensorMeta]:
        """RunOps: like `step` without an action, raising the first error."""
        result = self.step(session, ops, release)
        if result.error is not None:
            raise result.error
        return result.outputs

    def backward(self, session: Session, action: BackwardAction) -> list[str]:
        """tensor.backward(); the ids whose .grad is defined afterwards."""
        return self._call(session, action)

    def grad(self, session: Session, action: GradAction) -> list[bool]:
        """autograd.grad(); binds each gradient to its result id; per input, whether defined."""
        return self._call(session, action)

    def fetch(self, session: Session, action: FetchAction) -> list[tuple[str, np.ndarray | None]]:
        """Host copies (or views) of tensors or their grads, C-contiguous and little-endian."""
        return self._call(session, action)

    def list_tensors(self, session: Session, ids: Sequence[str] = ()) -> list[TensorMeta]:
        """TensorMeta of `ids`, or of every bound tensor when `ids` is empty."""
        return self._call(session, ListAction(list(ids)))

    def _call(self, session: Session, action: Action):
        try:
            return self._run_action(session, action)
        except Exception as exc:
            raise user_error(exc) from exc
        finally:
            session.nbytes = tensor_bytes(session.tensors.values())

    def bind_host_array(self, session: Session, tid: str, array: np.ndarray,
                        requires_grad: bool) -> TensorMeta:
        """Upload: a new leaf `tid` from a host array (moved to the session's device)."""
        self._check_id(tid)
        try:
            t = Tensor(backend(session.device).from_host(array), session.device)
            if requires_grad:
                t.requires_grad_(True)
        except Exception as exc:
            raise user_error(exc) from exc
        try:
            self._bind_checked(session, {tid: t})
        finally:
            session.nbytes = tensor_bytes(session.tensors.values())
        return tensor_meta(tid, t)

    def release(self, session: Session, ids: Sequence[str]) -> int:
        """Drop ids (unknown ones are skipped); how many were bound."""
        dropped = 0
        for tid in ids:
            if session.tensors.pop(tid, None) is not None:
                dropped += 1
        if dropped:
            session.nbytes = tensor_bytes(session.tensors.values())
        return dropped

    def check_room(self, session: Session, nbytes: int) -> None:
        """ResourceExhaustedError when `nbytes` more would not fit the session's limit."""
        limit = self.max_session_bytes
        if limit is not None and session.nbytes + nbytes > limit:
            raise ResourceExhaustedError(
                f"session {session.id} holds {session.nbytes} bytes; {nbytes} more would pass "
                f"its limit of {limit} bytes (max-session-bytes)"
            )

    # -- ops --------------------------------------------------------------------------------
    def _run_ops(self, session: Session, ops: Sequence[OpSpec],
                 describe: bool = True) -> list[TensorMeta]:
        if not ops:
            return []
        tensors = session.tensors
        limit = self.max_session_bytes
        previous: dict[str, Tensor | None] = {}  # id -> what it was bound to before this batch
        bound: list[str] = []
        budget = None if limit is None else _Budget(session, limit)
        # The session's generator and quiet floating point for the whole batch; grad mode is
        # set for each op (it is thread-local, and restored when the batch ends).
        with engine.set_grad_enabled(engine.is_grad_enabled()), \
                engine.using_generator(session.generator), np.errstate(all="ignore"):
            for index, spec in enumerate(ops):
                try:
                    results = self._run_one(session, spec, budget)
                except Exception as exc:
                    raise OpFailure(user_error(exc, spec.op), index, spec.op, spec.site) from exc
                for tid, t in zip(spec.outputs, results, strict=True):
                    if limit is not None and tid not in previous:
                        previous[tid] = tensors.get(tid)
                    tensors[tid] = t
                    if describe:
                        bound.append(tid)
        self._check_limit(session, previous)
        return [tensor_meta(tid, tensors[tid]) for tid in bound]

    def _run_one(self, session: Session, spec: OpSpec, budget: _Budget | None) -> tuple:
        """One op; the caller has made the session's generator current."""
        if spec.error is not None:
            raise spec.error
        for tid in spec.outputs:
            self._check_id(tid)
        engine.set_grad_enabled(not spec.no_grad)  # takes effect at once; _run_ops restores
        command = COMMANDS.get(spec.op)
        if command is not None:
            if spec.inplace:
                raise InvalidArgumentError(f"'{spec.op}' has no in-place form")
            if budget is not None and spec.data is not None:
                budget.take(spec.data.nbytes, spec.op)
            return command(self, session, spec)
        if spec.data is not None:
            raise InvalidArgumentError(f"only 'tensor' takes data, not {spec.op!r}")
        return self._registry_op(session, spec, budget)

    def _registry_op(self, session: Session, spec: OpSpec, budget: _Budget | None) -> tuple:
        op = engine.get_op(spec.op)
        inputs = tuple(self._resolve(session, x) for x in spec.inputs)
        attrs = spec.attrs
        if op.needs_device:
            attrs = dict(attrs)
            attrs["device"] = self._device_attr(attrs.get("device"), session.device)
        if spec.inplace:
            if spec.outputs:
                raise InvalidArgumentError(
                    f"in-place {spec.op} writes into input 0 and binds no outputs, "
                    f"got {len(spec.outputs)}"
                )
            if not inputs or not isinstance(inputs[0], Tensor):
                raise InvalidArgumentError(f"in-place {spec.op} needs a tensor as input 0")
            apply_inplace(op, inputs[0], inputs[1:], attrs)
            return ()
        if budget is None and len(spec.outputs) == 1 and op.name in _SINGLE_OUTPUT:
            # apply checks the shapes itself: no need to infer them twice to count outputs
            return (apply(op, inputs, attrs),)
        meta = op.infer(*inputs, **attrs)
        if isinstance(meta, Meta):
            _SINGLE_OUTPUT.add(op.name)
        self._check_outputs(spec, 1 if isinstance(meta, Meta) else len(meta))
        if budget is not None and not op.view:  # views share their input's storage
            budget.take(_meta_bytes(meta), spec.op)
        out = apply(op, inputs, attrs)
        return (out,) if isinstance(out, Tensor) else tuple(out)

    @staticmethod
    def _check_outputs(spec: OpSpec, n: int) -> None:
        if len(spec.outputs) != n:
            raise InvalidArgumentError(
                f"{spec.op} returns {n} tensor(s) but {len(spec.outputs)} output id(s) were given"
            )

    def _device_attr(self, value, default: str) -> str:
        device = default if value is None else canonical_device(value)
        if device not in self.devices:
            raise InvalidArgumentError(
                f"device {device} is not served here (devices: {', '.join(self.devices)})"
            )
        return device

    @staticmethod
    def _check_id(tid: str) -> None:
        if not tid:
            raise InvalidArgumentError("tensor ids must be non-empty strings")

    @staticmethod
    def _resolve(session: Session, x):
        if isinstance(x, Ref):
            return Executor._tensor(session, x.id)
        return x

    @staticmethod
    def _tensor(session: Session, tid: str) -> Tensor:
        t = session.tensors.get(tid)
        if t is None:
            raise TensorNotFoundError(
                f"tensor {tid!r} not found in this session (never bound, or released)")
        return t

    def _tensors(self, session: Session, ids: Sequence[str]) -> list[Tensor]:
        return [self._tensor(session, tid) for tid in ids]

    def _bind_checked(self, session: Session, new: dict[str, Tensor]) -> None:
        previous = {tid: session.tensors.get(tid) for tid in new}
        session.tensors.update(new)
        self._check_limit(session, previous)

    def _check_limit(self, session: Session, previous: dict[str, Tensor | None]) -> None:
        """After a call bound `previous`'s ids: over the byte limit, restore what they were
        bound to (so the session stays usable) and raise ResourceExhaustedError."""
        if self.max_session_bytes is None or not previous:
            return
        total = tensor_bytes(session.tensors.values())
        if total <= self.max_session_bytes:
            return
        for tid, old in previous.items():
            if old is None:
                session.tensors.pop(tid, None)
            else:
                session.tensors[tid] = old
        raise ResourceExhaustedError(
            f"session {session.id} would hold {total} bytes, over its limit of "
            f"{self.max_session_bytes} bytes (max-session-bytes); the {len(previous)} id(s) this "
            "request bound were released"
        )

    # -- actions ----------------------------------------------------------------------------
    def _run_action(self, session: Session, action: Action):
        with engine.using_generator(session.generator), np.errstate(all="ignore"):
            if isinstance(action, BackwardAction):
                return self._backward(session, action)
            if isinstance(action, GradAction):
                return self._grad(session, action)
            if isinstance(action, FetchAction):
                return self._fetch(session, action)
            if isinstance(action, ListAction):
                ids = action.ids or list(session.tensors)
                return [tensor_meta(tid, self._tensor(session, tid)) for tid in ids]
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover

    def _backward(self, session: Session, a: BackwardAction) -> list[str]:
        if not a.tensors:
            raise InvalidArgumentError("backward needs at least one tensor")
        roots = self._tensors(session, a.tensors)
        grads = self._tensors(session, a.grad_tensors) or None
        if grads is not None and len(grads) != len(roots):
            raise InvalidArgumentError(
                f"backward got {len(grads)} grad_tensors for {len(roots)} tensors"
            )
        inputs = self._tensors(session, a.inputs) or None
        with engine.set_grad_enabled(True):
            engine.autograd.backward(roots, grads, a.retain_graph, a.create_graph, inputs)
        return [tid for tid, t in session.tensors.items() if t._grad is not None]

    def _grad(self, session: Session, a: GradAction) -> list[bool]:
        if not a.outputs or not a.inputs:
            raise InvalidArgumentError("grad needs at least one output and one input")
        if len(a.results) != len(a.inputs):
            raise InvalidArgumentError(
                f"grad needs one result id per input: {len(a.inputs)} inputs, "
                f"{len(a.results)} results"
            )
        for tid in a.results:
            self._check_id(tid)
        outputs = self._tensors(session, a.outputs)
        inputs = self._tensors(session, a.inputs)
        grads = self._tensors(session, a.grad_outputs) or None
        if grads is not None and len(grads) != len(outputs):
            raise InvalidArgumentError(
                f"grad got {len(grads)} grad_outputs for {len(outputs)} outputs"
            )
        with engine.set_grad_enabled(True):
            results = engine.autograd.grad(outputs, inputs, grads, a.retain_graph,
                                           a.create_graph, a.allow_unused)
        for tid, g in zip(a.results, results, strict=True):
            if g is None:  # allow_unused: make sure the id does not point at something stale
                session.tensors.pop(tid, None)
        self._bind_checked(session, {tid: g for tid, g in zip(a.results, results, strict=True)
                                     if g is not None})
        return [g is not None for g in results]

    def _fetch(self, session: Session, a: FetchAction) -> list[tuple[str, np.ndarray | None]]:
        out = []
        for tid in a.ids:
            t = self._tensor(session, tid)
            if a.grad:
                t = t._grad
            if t is None:
                out.append((tid, None))
                continue
            host = t._host()
            if not host.flags.c_contiguous:
                host = host.copy(order="C")
            if host.dtype.byteorder == ">":  # pragma: no cover - big-endian hosts
                host = host.astype(host.dtype.newbyteorder("<"))
            out.append((tid, host))
        return out


# -- session commands -----------------------------------------------------------------------
def _arg(session: Session, spec: OpSpec, i: int) -> Tensor:
    x = spec.inputs[i]
    if not isinstance(x, Ref):
        raise InvalidArgumentError(f"input {i} of '{spec.op}' must be a tensor id")
    return Executor._tensor(session, x.id)


def _cmd_tensor(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (0, 0), (1, 1))
    if spec.data is None:
        raise InvalidArgumentError("'tensor' needs data (TensorData with values or raw)")
    t = Tensor(backend(session.device).from_host(spec.data), session.device)
    if _bool_attr(spec.attrs, "requires_grad", False):
        t.requires_grad_(True)
    return (t,)


def _cmd_requires_grad_(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (1, 1), (0, 1))
    t = _arg(session, spec, 0).requires_grad_(_bool_attr(spec.attrs, "requires_grad", True))
    return (t,) * len(spec.outputs)


def _cmd_retain_grad(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (1, 1), (0, 0))
    _arg(session, spec, 0).retain_grad()
    return ()


def _cmd_grad(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (1, 1), (1, 1))
    g = _arg(session, spec, 0)._grad
    if g is None:
        raise engine.AutogradError(
            f"tensor {spec.inputs[0].id!r} has no grad (its .grad is None)"
        )
    return (g,)


def _cmd_set_grad(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (1, 2), (0, 0))
    t = _arg(session, spec, 0)
    t.grad = _arg(session, spec, 1) if len(spec.inputs) == 2 else None
    return ()


def _cmd_detach(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (1, 1), (1, 1))
    return (_arg(session, spec, 0).detach(),)


def _cmd_detach_(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (1, 1), (0, 1))
    t = _arg(session, spec, 0).detach_()
    return (t,) * len(spec.outputs)


def _cmd_data(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (1, 1), (1, 1))
    return (_arg(session, spec, 0).data,)


def _cmd_set_data(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (2, 2), (0, 0))
    _arg(session, spec, 0).data = _arg(session, spec, 1)
    return ()


def _cmd_manual_seed(ex: Executor, session: Session, spec: OpSpec) -> tuple:
    _expect(spec, (0, 0), (0, 0))
    seed = spec.attrs.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"manual_seed needs an integer attr 'seed', got {seed!r}")
    session.generator.manual_seed(seed % (1 << 64))  # torch also takes negative seeds
    return ()


COMMANDS: dict[str, Callable[[Executor, Session, OpSpec], tuple]] = {
    "tensor": _cmd_tensor,
    "requires_grad_": _cmd_requires_grad_,
    "retain_grad": _cmd_retain_grad,
    "grad": _cmd_grad,
    "set_grad": _cmd_set_grad,
    "detach": _cmd_detach,
    "detach_": _cmd_detach_,
    "data": _cmd_data,
    "set_data": _cmd_set_data,
    "manual_seed": _cmd_manual_seed,
}


# -- workers --------------------------------------------------------------------------------
class DeviceWorkers:
    """Where engine work runs: CPU work on the RPC thread that asks, each GPU's on one thread.

    A CUDA device gets a single worker thread: its kernels share one stream anyway, and one
    thread keeps the device's memory pool and context simple (the engine's backend enters
    `cupy.cuda.Device(n)` around each op). CPU work runs on the calling RPC thread, at most
    `cpu_workers` calls at a time (numpy releases the GIL in its kernels): CPU sessions run
    concurrently without handing each request to another thread and back, and GPU sessions
    never wait behind CPU ones or the reverse. Ordering within a session comes from the
    session lock, not from the workers: a session runs at most one request at a time.
    """

    def __init__(self, devices: Sequence[str], cpu_workers: int | None = None) -> None:
        if cpu_workers is None:
            cpu_workers = min(4, os.cpu_count() or 1)
        self._cpu_slots = threading.BoundedSemaphore(max(1, cpu_workers))
        self._pools = {
            device: concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"gradserve-{device}")
            for device in devices if device != "cpu"
        }

    def run(self, device: str, fn: Callable, *args):
        """Run `fn(*args)` on `device`'s worker and wait for its result (or its exception)."""
        if device == "cpu":
            with self._cpu_slots:
                return fn(*args)
        return self._pools[device].submit(fn, *args).result()

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
