"""Running requests against a session: ops, backward, grad, fetch, upload.

Everything here is plain Python over the engine (no grpc, no protobuf): the servicer hands in
a `Request` (`_requests`: every wire form lowered to ops, release and an action) and converts
what comes back. `run` is the one way to run one: it runs on the session's item on a compute
slot while the caller holds the session's lock, so a session's requests run one at a time and
in order.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence

import numpy as np
from gradserve import engine
from gradserve.engine import (
    DeviceUnavailableError,
    GradserveError,
    InvalidArgumentError,
    Meta,
    Tensor,
)
from gradserve.engine.seam import (
    OPS,
    apply,
    apply_inplace,
    backend,
    canonical_device,
    describe_graph,
    grad_mode,
)
from gradserve.v1.codec import INPLACE, NO_GRAD

from . import _replay as replay
from ._callbacks import serving
from ._errors import (
    OpFailure,
    ResourceExhaustedError,
    TensorNotFoundError,
    detach,
    shorten,
)
from ._limits import (
    Budget,
    Limits,
    check_elements,
    check_limit,
    count_nodes,
    meta_bytes,
    op_room,
)
from ._opinfo import suggest
from ._plan import record
from ._requests import (
    Action,
    BackwardAction,
    FetchAction,
    GradAction,
    GraphAction,
    ListAction,
    OpSource,
    Request,
    StepResult,
    TensorMeta,
    UploadAction,
    tensor_meta,
)
from ._scheduler import check_deadline
from ._sessions import Session

log = logging.getLogger("gradserve.server")


def user_error(exc: BaseException, op: str | None = None) -> BaseException:
    """What an op's failure means for the caller.

    Engine errors pass through. Anything else an op raises on input that came from the wire
    (a TypeError for a missing argument, a ValueError from numpy on a garbage attr) is the
    caller's mistake, so it becomes an InvalidArgumentError; running out of memory is a limit.
    """
    if isinstance(exc, (GradserveError, OpFailure)):
        return exc
    if isinstance(exc, MemoryError):
        return ResourceExhaustedError(f"out of memory: {exc or type(exc).__name__}", "memory")
    log.debug("op rejected with a non-engine error", exc_info=exc)
    if isinstance(exc, TypeError) and op is not None:
        # "_binary_meta() got an unexpected keyword argument 'x'": name the op, not the helper
        return InvalidArgumentError(_HELPER_NAME.sub(f"{op}()", str(exc), count=1))
    return InvalidArgumentError(f"invalid arguments: {type(exc).__name__}: {exc}")


_HELPER_NAME = re.compile(r"^(<lambda>|[\w.]+)\(\)")
_ACTION_KINDS = {BackwardAction: "backward", GradAction: "grad", FetchAction: "fetch",
                 ListAction: "list"}


def served(device, devices: Sequence[str]) -> str:
    """The canonical name of `device` if this server serves it; a device it does not serve
    (a GPU it lacks, or one left out of --devices) is DeviceUnavailableError naming those it
    has (FAILED_PRECONDITION: the request is well formed, this server can't run it)."""
    name = canonical_device(device)
    if name not in devices:
        raise DeviceUnavailableError(
            f"device {name} is not served here (devices: {', '.join(devices)})"
        )
    return name


class Batch:
    """One request's ops as they run: what they bound (and what those ids were bound to
    before), the byte budget, the op index. A captured step's plan runs on it too."""

    __slots__ = ("session", "tensors", "previous", "bound", "budget", "track", "describe",
                 "index", "_run_one")

    def __init__(self, executor: Executor, session: Session, describe: bool) -> None:
        self.session, self.tensors, self.describe = session, session.tensors, describe
        self.previous: dict[str, Tensor | None] = {}  # id -> its binding before this batch
        self.bound: list[str] = []
        self.budget = Budget(session, executor.max_session_bytes)
        self.track = session.account.track
        self.index = 0
        self._run_one = executor._run_one

    def eager(self, entry, read, where) -> tuple:
        """Read and run one entry the eager way, and bind its outputs."""
        index = self.index
        try:
            check_deadline(f"op {index}'s request")
            name, inputs, outputs, attrs, flags = read(entry)
            grad_mode._state.enabled = not flags & NO_GRAD
            results = self._run_one(self.session, name, inputs, outputs, attrs, flags,
                                    self.budget)
        except Exception as exc:
            self.fail(exc, index, entry, where)
        self.bind(outputs, results)
        return results

    @staticmethod
    def fail(exc: Exception, index: int, entry, where) -> None:
        """Raise what op `index` (`entry`) failing with `exc` means for the caller."""
        name, site = where(entry)
        raise OpFailure(user_error(exc, name), index, name, site) from exc

    def bind(self, outputs: Sequence[str], results: tuple) -> None:
        tensors, previous = self.tensors, self.previous
        if len(results) != len(outputs):  # zip's strict=True, without its cost per op
            raise ValueError(f"{len(results)} results for {len(outputs)} output ids")
        for tid, t in zip(outputs, results, strict=False):  # lengths compared above
            if tid not in previous:
                previous[tid] = tensors.get(tid)
            tensors[tid] = t
            if type(t) is Tensor:
                self.track(t._data, t._device)
            if self.describe:
                self.bound.append(tid)
        self.index += 1


class Executor:
    """Runs requests on sessions; `devices` are the devices this server serves."""

    def __init__(self, devices: Sequence[str], limits: Limits | None = None,
                 observe: Callable[[str, float], None] | None = None) -> None:
        self.devices = tuple(devices)
        self.tensor_devices = self.devices + (() if "cpu" in self.devices else ("cpu",))
        self.limits = limits if limits is not None else Limits()
        self.max_session_bytes = self.limits.max_session_bytes or None
        self.max_op_elements = self.limits.max_op_elements or None
        # observe(kind, seconds) for each piece of work: "op_batch", "backward", ... (metrics)
        self._observe = observe or (lambda kind, seconds: None)

    # -- requests -------------------------------------------------------------------------
    def run(self, session: Session, request: Request, describe: bool = True) -> StepResult:
        """Run `request`'s ops in order up to the first failure, drop its `release`, then run
        its action unless something failed. Errors are returned in the result, not raised
        (`StepResult.value` raises them). Without `describe`, `outputs` stays empty (the
        Pipeline does not echo them).

        The action's result: BackwardAction, the ids whose .grad is defined afterwards;
        GradAction, per input whether a gradient was bound to its result id; FetchAction,
        (id, host array or None) pairs, C-contiguous and little-endian; ListAction, the
        TensorMeta of its ids (every bound id when empty); GraphAction, the graph's
        description (`describe_graph`); UploadAction, the new leaf's TensorMeta."""
        out = StepResult()
        with serving(session):  # a backward here may ask the client to run a hook
            if request.ops:
                started = time.perf_counter()
                try:
                    out.outputs = self._run_ops(session, request.ops, describe)
                except Exception as exc:
                    out.error = detach(user_error(exc))
                self._observe("op_batch", time.perf_counter() - started)
            out.released = self._release(session, request.release)
            if out.error is None and request.then is not None:
                try:
                    out.result = self._timed_action(session, request.then)
                except Exception as exc:
                    out.error = detach(user_error(exc))
        return out

    @staticmethod
    def _release(session: Session, ids: Sequence[str]) -> int:
        """Drop ids (unknown ones are skipped); how many were bound."""
        tensors = session.tensors
        dropped = 0
        for tid in ids:
            if tensors.pop(tid, None) is not None:
                dropped += 1
        return dropped

    def check_room(self, session: Session, nbytes: int) -> None:
        """ResourceExhaustedError when `nbytes` more would not fit the session's limit."""
        Budget(session, self.max_session_bytes).take(nbytes, f"an upload of {nbytes} bytes")

    # -- ops --------------------------------------------------------------------------------
    def _run_ops(self, session: Session, sources: Sequence[OpSource],
                 describe: bool) -> list[TensorMeta]:
        batch = Batch(self, session, describe)
        # The session's generator and quiet floating point for the whole batch; grad mode is
        # set for each op (it is thread-local) and restored when the batch ends.
        with engine.set_grad_enabled(grad_mode._state.enabled), \
                engine.using_generator(session.generator), np.errstate(all="ignore"):
            for source in sources:
                read, where = source.read, source.where
                for entry in source.entries:
                    if replay.is_step(entry):
                        self._run_captured(batch, entry, read, where)
                    else:
                        batch.eager(entry, read, where)
        check_limit(session, self.max_session_bytes, batch.previous)
        tensors = session.tensors
        return [tensor_meta(tid, tensors[tid]) for tid in batch.bound]

    def _run_captured(self, batch: Batch, entry: list, read, where) -> None:
        """A captured step (`@capture`/`@replay`): its plan when one fits, else its entries
        the eager way, watched to make one (server/_plan.py)."""
        captured, ids, values = replay.resolve(batch.session, entry, self.limits.max_batch_ops)
        plan = captured.plan
        if plan is None:
            captured.plan = record(batch, captured.template, ids, values, read, where)
            return
        fallbacks = plan.fallbacks
        try:
            plan.run(batch, ids, values, read, where)
        finally:
            if plan.fallbacks != fallbacks:  # it did not fit this run: watch the next one
                captured.plan = None

    def _run_one(self, session: Session, name: str, inputs: tuple, outputs: tuple,
                 attrs: dict, flags: int, budget: Budget) -> tuple:
        op = OPS.get(name)
        if op is None:
            raise InvalidArgumentError(f"unknown op {shorten(name)!r}{suggest(name)}")
        tensors = session.tensors
        try:
            inputs = tuple([tensors[x] if type(x) is str else x for x in inputs])
        except KeyError as e:
            raise TensorNotFoundError(
                f"tensor {e.args[0]!r} not found in this session (never bound, or released)"
            ) from None
        if op.needs_device:  # tensors may always go to the host, as torch's .cpu()
            device = attrs.get("device")
            device = session.device if device is None else served(device, self.tensor_devices)
            attrs = {**attrs, "device": device}
        if op.run is not None:  # a command
            if flags & INPLACE:
                raise InvalidArgumentError(f"'{name}' has no in-place form")
            op.check_arity(len(inputs), len(outputs))
            if inputs and isinstance(inputs[0], np.ndarray):
                budget.take(inputs[0].nbytes, name)
            return op.run(inputs, attrs)[:len(outputs)]
        if flags & INPLACE:
            if outputs:
                raise InvalidArgumentError(
                    f"in-place {name} writes into input 0 and binds no outputs, "
                    f"got {len(outputs)}"
                )
            if not inputs or not isinstance(inputs[0], Tensor):
                raise InvalidArgumentError(f"in-place {name} needs a tensor as input 0")
            check_elements(name, inputs, (), self.max_op_elements)
            apply_inplace(op, inputs[0], inputs[1:], attrs)
            return ()

        def check(meta) -> None:
            if type(meta) is Meta and len(outputs) == 1:  # the usual op: one output
                op_room(name, inputs, meta, self.max_op_elements, budget, op.view)
                return
            metas = (meta,) if type(meta) is Meta else meta
            if len(outputs) != len(metas):
                raise InvalidArgumentError(
                    f"{name} returns {len(metas)} tensor(s) but {len(outputs)} output id(s) "
                    "were given"
                )
            check_elements(name, inputs, metas, self.max_op_elements, op.view)
            budget.take(meta_bytes(m for m in metas if m.strides is None or not op.view), name)

        out = apply(op, inputs, attrs, check)
        return (out,) if isinstance(out, Tensor) else out

    @staticmethod
    def _tensor(session: Session, tid: str) -> Tensor:
        t = session.tensors.get(tid)
        if t is None:
            raise TensorNotFoundError(
                f"tensor {tid!r} not found in this session (never bound, or released)")
        return t

    def _tensors(self, session: Session, ids: Sequence[str]) -> list[Tensor]:
        return [self._tensor(session, tid) for tid in ids]

    # -- actions ----------------------------------------------------------------------------
    def _timed_action(self, session: Session, action: Action):
        started = time.perf_counter()
        try:
            return self._run_action(session, action)
        finally:
            if type(action) is BackwardAction:  # the engine made grads: count them
                session.bytes_changed()
            kind = _ACTION_KINDS.get(type(action))
            if kind is not None:
                self._observe(kind, time.perf_counter() - started)

    def _run_action(self, session: Session, action: Action):
        # reading tensors computes nothing: no generator, no floating point state
        if isinstance(action, FetchAction):
            return self._fetch(session, action)
        if isinstance(action, ListAction):
            ids = action.ids or list(session.tensors)
            return [tensor_meta(tid, self._tensor(session, tid)) for tid in ids]
        with engine.using_generator(session.generator), np.errstate(all="ignore"):
            if isinstance(action, BackwardAction):
                return self._backward(session, action)
            if isinstance(action, GradAction):
                return self._grad(session, action)
            if isinstance(action, GraphAction):
                return self._graph(session, action)
            if isinstance(action, UploadAction):
                return self._bind(session, action)
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
        inputs = self._tensors(session, a.inputs)
        # the registry's `backward` command, the one an op_batch entry runs: one backward
        with engine.set_grad_enabled(True):
            OPS["backward"].run((*roots, *(grads or ()), *inputs), {
                "grads": len(grads or ()), "inputs": len(inputs),
                "retain_graph": a.retain_graph, "create_graph": a.create_graph})
        return [tid for tid, t in session.tensors.items() if t._grad is not None]

    def _grad(self, session: Session, a: GradAction) -> list[bool]:
        if not a.outputs or not a.inputs:
            raise InvalidArgumentError("grad needs at least one output and one input")
        if len(a.results) != len(a.inputs):
            raise InvalidArgumentError(
                f"grad needs one result id per input: {len(a.inputs)} inputs, "
                f"{len(a.results)} results"
            )
        if not all(a.results):
            raise InvalidArgumentError("tensor ids must be non-empty strings")
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
        previous = {}
        for tid, g in zip(a.results, results, strict=True):
            previous[tid] = session.tensors.pop(tid, None)
            if g is not None:  # allow_unused: the id must not point at something stale
                session.tensors[tid] = g
                session.account.track_tensor(g)
        check_limit(session, self.max_session_bytes, previous)
        return [g is not None for g in results]

    def _bind(self, session: Session, a: UploadAction) -> TensorMeta:
        """A new leaf from a host array (moved to the session's device), as the `tensor`
        command makes one."""
        if not a.id:
            raise InvalidArgumentError("tensor ids must be non-empty strings")
        (t,) = OPS["tensor"].run((a.array,), {"device": session.device,
                                              "requires_grad": a.requires_grad})
        previous = {a.id: session.tensors.get(a.id)}
        session.tensors[a.id] = t
        session.account.track_tensor(t)
        check_limit(session, self.max_session_bytes, previous)
        return tensor_meta(a.id, t)

    def _graph(self, session: Session, a: GraphAction) -> dict:
        root = self._tensor(session, a.id)
        limit = self.limits.max_graph_nodes
        if limit is not None and limit > 0:
            count_nodes(root, limit)
        by_object = {id(t): i for i, t in session.tensors.items()}

        def name(leaf) -> str:
            tid = by_object.get(id(leaf), "")
            return a.names.get(tid, tid)

        return describe_graph(root, name)

    def _fetch(self, session: Session, a: FetchAction) -> list[tuple[str, np.ndarray | None]]:
        out = []
        for tid in a.ids:
            t = self._tensor(session, tid)
            if a.grad:
                t = t._grad
            if t is None:
                out.append((tid, None))
                continue
            host = backend(t._device).to_host(t._data)
            if not host.flags.c_contiguous:
                host = host.copy(order="C")
            if host.dtype.byteorder == ">":  # pragma: no cover - big-endian hosts
                host = host.astype(host.dtype.newbyteorder("<"))
            out.append((tid, host))
        return out
