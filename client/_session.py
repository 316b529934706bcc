"""Session: one server session, its op buffer and its Pipeline stream.

Recording an op appends an entry to the buffer (`_send`); the buffer leaves as one
PipelineRequest (`op_batch`, see gradserve.v1.codec) when it holds MAX_BATCH_OPS ops or its
first op is MAX_BATCH_DELAY old, OVERLAP_OPS ops after a backward of much work, or when a
call needs data (`item`, `numpy`, `fetch`, ...), which waits for its response. So the server
computes a step's forward while the client still records it, and a training step waits once,
for the value the user asked for.
"""

from __future__ import annotations

import collections
import itertools
import secrets
import threading
import time

import numpy as np
from gradserve.engine import DType, InvalidArgumentError, TensorAPI, float32, get_default_dtype
from gradserve.engine.seam import grad_mode
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1.codec import (
    INPLACE,
    INT64_MAX,
    INT64_MIN,
    NO_GRAD,
    array_from_tensor_data,
    check_int,
)

from . import _callbacks, _grads, _handoff, _replay, _wire
from ._compile import in_whole_batches
from ._current import pop, push
from ._errors import GradserveError, SessionLostError
from ._factories import Factories
from ._pipeline import Pipeline
from ._record import RemoteKind, caller_site
from ._tensor import Held, RemoteTensor, from_info, output_proxy

MAX_BATCH_OPS = 64  # send the buffer on when it holds this many ops (the server starts early)
MAX_BATCH_BYTES = 2 << 20  # ... or this many bytes of inline tensor data
MAX_BATCH_DELAY = 0.002  # ... or when its first op waited this long and the server is idle
# A backward sends the buffer on when its ops make at least this many elements and
# OVERLAP_OPS more ops follow it: the server computes the forward and backward while the
# client records the rest of the optimizer's ops. Below either, a request's cost is not
# hidden (small compute; SGD's one-op step), so the step rides with the wait after it.
OVERLAP_ELEMENTS = 1 << 17
OVERLAP_OPS = 8
INLINE_FETCH_BYTES = 1 << 20  # tensors up to this come back inside a Pipeline response
INLINE_FETCH_TOTAL = 3 << 20  # ... as long as one response stays below this
CLOSE_TIMEOUT = 10.0  # seconds CloseSession may take (it also runs at interpreter exit)
_SCALARS = (int, float, bool, str, type(None))
_grad_state = grad_mode._state  # read per op: bound once


class Session(Factories):
    """A remote autograd session: a tensor table on one server device, owned by its creator.

    Make one with `client.session(device=...)` (or `client.attach(id)`) and use it as a
    context manager; leaving the block closes it and frees everything it holds.

    >>> import gradserve as gs
    >>> with gs.connect("127.0.0.1:50051").session() as s:
    ...     w = s.tensor(2.0, requires_grad=True)
    ...     (w * 3).backward()
    ...     w.grad.item()
    3.0
    """

    def __init__(self, client, info, owned: bool) -> None:
        self._client = client
        self._id = info.session_id
        self._device = info.device or "cpu"
        self._owned = owned  # created by this client (else attached)
        self._prefix = secrets.token_hex(3) + "."  # ids of this proxy set: "9f2c1a.17"
        self._counter = itertools.count(1)
        self._lock = threading.RLock()
        self._ops: list = []  # op_batch entries not sent yet
        self._sites: list = []  # the user's line of each
        self._blobs: list = []  # TensorData the entries name as {"d": k}
        self._op_bytes = 0
        self._first_at = 0.0  # when the oldest buffered op was recorded
        self._send_at = MAX_BATCH_OPS  # the buffer goes when it holds this many ops
        self._elements = 0  # elements the buffered ops make (how much work they are)
        self._kind = RemoteKind(self)  # how its proxies' ops are recorded
        self._plans = _replay.Plans(self._prefix)  # batches sent before, as handles (_replay)
        # collected proxies' references, queued by their callback (`_released` takes them)
        self._releases: collections.deque[Held] = collections.deque()
        self._proxies: dict[str, Held] = {}  # id -> its proxy (a weak reference)
        self._on_collected = self._releases.append  # a C callback: no Python call per proxy
        self._pipe: Pipeline | None = None
        self._seqs = itertools.count(1)  # request numbers, across the session's streams
        self._instance = info.instance_id  # the server process holding it
        self._closed = False
        self._grad_epoch = 0  # bumped by backward: cached `.grad` proxies are stale
        self._unconfirmed = False  # a backward was sent that no wait has answered yet
        self._server_devices = tuple(info.devices) or (self._device,)
        self._callbacks: dict = {}  # key -> the Python of a hook or Function (_callbacks)
        self._callback_keys = itertools.count(1)
        self._callback_errors: list = []
        self._default_float = float32  # the default dtype the server has for this session
        self.stats = _wire.Stats()

    # -- identity and lifetime ---------------------------------------------------------------
    @property
    def id(self) -> str:
        """The session's id (pass it to `client.attach` from another connection)."""
        return self._id

    @property
    def device(self) -> str:
        """The device the session's tensors live on: "cpu" or "cuda:N"."""
        return self._device

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else self._device
        return f"<gradserve.Session {self._id} ({state})>"

    @property
    def server_devices(self) -> tuple[str, ...]:
        """The devices the session's server serves ("cpu", "cuda:0", ...)."""
        return self._server_devices

    def __enter__(self) -> Session:
        push(self)  # the current session of this thread until the block ends
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        pop(self)
        try:
            self.close()
        except GradserveError:
            if exc_type is None:
                raise

    def close(self) -> None:
        """Close the session on the server, freeing every tensor it holds. Idempotent.

        >>> s = client.session()
        >>> s.close(); s.close()
        """
        if not self._disconnect():
            return
        try:
            self._unary("CloseSession", pb.SessionRef(session_id=self._id),
                        timeout=CLOSE_TIMEOUT)
        except SessionLostError:
            pass  # already gone (reclaimed, or closed by another client): the goal is met

    def _disconnect(self) -> bool:
        """Stop using the session without closing it on the server; False if already done."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._ops, self._sites, self._blobs = [], [], []
            self._releases.clear()
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        self._client._forget(self)
        return True

    def info(self) -> dict:
        """The server's view of the session: device, owner, tensor_count, bytes (and per
        device in bytes_by_device), idle/ttl; on a GPU also that GPU's memory in use and its
        memory pool's size (device_memory_used, device_memory_pool; all sessions on it).

        >>> s.info()["device"]
        'cpu'
        """
        self._check_open()
        pipe = self._pipe
        if self._ops or self._releases or (pipe is not None and pipe.pending):
            self.synchronize()  # describe what the user did, sent-ahead ops and releases too
        msg = self._unary("DescribeSession", pb.SessionRef(session_id=self._id))
        return {"session_id": msg.session_id, "device": msg.device, "owner": msg.owner,
                "tensor_count": msg.tensor_count, "bytes": msg.bytes,
                "bytes_by_device": dict(msg.bytes_by_device),
                "device_memory_used": msg.device_memory_used,
                "device_memory_pool": msg.device_memory_pool,
                "idle_seconds": msg.idle_seconds, "ttl_seconds": msg.ttl_seconds,
                "instance_id": msg.instance_id}

    def _check_open(self) -> None:
        if self._closed:
            raise _handoff.closed_here(self)

    def _unary(self, method: str, request, timeout: float | None = None):
        """A unary call on this session, following it if it moved (`_handoff.following`).
        `request` may be a function making it (an Upload's messages can be sent once)."""
        return _handoff.following(self, lambda: self._client._call(
            method, request() if callable(request) else request, session_id=self._id,
            timeout=timeout))

    # -- proxies ----------------------------------------------------------------------------
    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._counter)}"

    def _proxy(self, tensor_id: str) -> RemoteTensor | None:
        ref = self._proxies.get(tensor_id)
        return None if ref is None else ref()

    def _released(self) -> tuple[list, list]:
        """(the references of the proxies collected since the last request, taken off the
        queue, and the ids the server may free: those of proxies this client owns). The
        table lets go of each entry unless a newer proxy took the id; a request that failed
        puts its references back, to be taken again."""
        dead, proxies = self._releases, self._proxies
        helds = [dead.popleft() for _ in range(len(dead))]  # others may append meanwhile
        for held in helds:
            if proxies.get(held.tid) is held:
                proxies.pop(held.tid, None)
        return helds, [held.tid for held in helds if type(held) is Held]

    def _own(self, t) -> RemoteTensor:
        if not isinstance(t, RemoteTensor) or t._session is not self:
            raise InvalidArgumentError(f"expected a RemoteTensor of session {self._id}, got "
                                       f"{type(t).__name__}")
        return t

    # -- the op buffer ------------------------------------------------------------------------
    def _send(self, op: str, inputs: tuple, outputs: tuple, attrs: dict, *,
              inplace: bool = False, data: pb.TensorData | None = None) -> None:
        """Buffer one op; sends the buffer on (without waiting) when it is full."""
        self._buffer(op, inputs, outputs, attrs, INPLACE if inplace else 0, data,
                     caller_site(3))

    def _buffer(self, op: str, inputs: tuple, outputs: tuple, attrs: dict, flags: int,
                data: pb.TensorData | None, site) -> None:
        """`_send` with the user's line found by the caller (a recorded op's kind knows how
        many of the package's frames to skip, `_record.RemoteKind`) and flags INPLACE or 0."""
        n = len(inputs)
        if n == 2:  # most ops: no loop, no list
            a, b = inputs
            args = (a._id if isinstance(a, RemoteTensor) else _operand(a),
                    b._id if isinstance(b, RemoteTensor) else _operand(b))
        elif n == 1:
            a = inputs[0]
            args = (a._id if isinstance(a, RemoteTensor) else _operand(a),)
        else:
            args = tuple([x._id if isinstance(x, RemoteTensor) else _operand(x)
                          for x in inputs])
        if attrs:
            for value in attrs.values():
                if type(value) not in _SCALARS:
                    _check_attr(value)
        else:
            attrs = None
        if not _grad_state.enabled:
            flags |= NO_GRAD
        lock = self._lock
        lock.acquire()  # not `with`: this runs for every op, and try/finally costs nothing
        try:
            if self._closed:
                raise _handoff.closed_here(self)
            if data is not None:
                size = len(data.raw)
                if self._op_bytes + size > MAX_BATCH_BYTES:
                    self._flush_locked()
                args = ({"d": len(self._blobs)},)
                self._blobs.append(data)
                self._op_bytes += size
            ops = self._ops
            if not ops:
                self._first_at = time.monotonic()
            if get_default_dtype() is not self._default_float:
                # per process: the server learns it (a session setting) before the next op
                self._default_float = get_default_dtype()
                ops.append(("set_default_dtype", (), (), {"dtype": self._default_float.name},
                            0))
                self._sites.append(site)
            # tuples (JSON writes them as arrays): the cyclic collector stops tracking ones of
            ops.append((op, args, outputs, attrs, flags))  # strings and numbers, not lists
            self._sites.append(site)
            if len(ops) >= self._send_at or self._op_bytes >= MAX_BATCH_BYTES or (
                    time.monotonic() - self._first_at >= MAX_BATCH_DELAY and self._idle()
                    and not in_whole_batches()):
                self._flush_locked()
        finally:
            lock.release()

    def _idle(self) -> bool:
        """Whether every request sent has been answered. Ops that waited MAX_BATCH_DELAY go
        out only then: while the server works on earlier ones, a fuller batch costs less."""
        pipe = self._pipe
        return pipe is None or not pipe.pending

    def _flush(self) -> None:
        """Send buffered ops and pending releases now, without waiting."""
        with self._lock:
            self._check_open()
            self._flush_locked()

    def _send_work(self) -> None:
        """After a backward: if the buffer's ops are work enough to overlap with what comes
        next, send it on once OVERLAP_OPS more ops follow (or at the next wait)."""
        if self._elements >= OVERLAP_ELEMENTS:
            self._send_at = min(self._send_at, len(self._ops) + OVERLAP_OPS)

    def _send_action(self, **then) -> None:
        """Send the buffer with an action (backward, grad) whose answer nobody waits for."""
        with self._lock:
            self._check_open()
            self._flush_locked(**then)

    def _flush_locked(self, wait: bool = False, **then) -> int | None:
        ops, sites, blobs = self._ops, self._sites, self._blobs
        helds, releases = self._released() if self._releases else ((), ())
        if not (ops or releases or then or wait):
            return None
        request = pb.PipelineRequest(session_id=self._id, release=releases, **then)
        if ops:
            self._ops, self._sites, self._blobs, self._op_bytes = [], [], [], 0
            self._elements, self._send_at = 0, MAX_BATCH_OPS
            request.op_batch = self._plans.pack(ops)  # a replay when captured (_replay)
            if blobs:
                request.op_data.extend(blobs)
        if self._pipe is None or self._pipe.reported:
            # A stream that broke (a dropped connection) was reported to the caller once; the
            # session lives on the server, so carry on over a new stream.
            self._pipe = Pipeline(self._client, self._id, self._serve_callback, self._seqs,
                                  on_break=lambda e: _handoff.explain_break(self, e),
                                  restore=lambda e: _replay.restore(self, e),
                                  resend=lambda r: _replay.resend(self, r))
        try:
            seq = self._pipe.submit(request, (ops, sites) if ops else None, wait)
        except GradserveError:
            self._releases.extend(helds)  # the ids are still bound: release them later
            raise
        stats = self.stats
        stats.requests += 1
        stats.ops += len(ops)
        stats.releases += len(releases)
        stats.bytes_up += sum(len(b.raw) for b in blobs) if blobs else 0
        return seq

    def _roundtrip(self, **then):
        """Send the buffer with a `then` action (or none: a barrier) and wait for the reply."""
        with self._lock:
            self._check_open()
            seq = self._flush_locked(wait=True, **then)
            pipe = self._pipe
            self.stats.waits += 1
        try:
            return pipe.wait(seq)
        except SessionLostError as e:
            raise _handoff.explain(self, e) from None
        except GradserveError:
            _grads.after_failure(self)  # how far the backwards sent got is not known here
            raise

    def _serve_callback(self, call) -> int:
        grads = [from_info(self, info, owned=True) if info.id else None for info in call.grads]
        return _callbacks.serve(self, call, grads)

    def synchronize(self) -> None:
        """Wait until the server ran everything sent so far; raise any error it met.

        >>> y = s.ones(2).to("cuda:7")  # not a device of this server
        >>> s.synchronize()
        Traceback (most recent call last):
        ...
        DeviceUnavailableError: device cuda:7 is not served here (devices: cpu) ...
        """
        self._roundtrip()

    # -- values -----------------------------------------------------------------------------
    def fetch(self, *tensors: RemoteTensor, grad: bool = False) -> list:
        """Values (or `.grad`s, None where undefined) of many tensors in one wait.

        Unlike `numpy()` it also reads tensors that require grad (as `t.detach().numpy()`).

        >>> x = s.tensor([1., 2.], requires_grad=True)
        >>> a, b = s.fetch(x, x * 2)
        >>> b.tolist()
        [2.0, 4.0]
        >>> s.fetch(x, grad=True)  # no backward yet: known without a round trip
        [None]
        """
        if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
            tensors = tuple(tensors[0])
        return self._fetch(tensors, grad)

    def _fetch(self, tensors, grad: bool = False) -> list:
        for t in tensors:
            if not isinstance(t, RemoteTensor) or t._session is not self:
                raise InvalidArgumentError("fetch takes RemoteTensors of this session")
        wanted = [t for t in tensors if not grad or t._has_grad]
        inline, streamed, budget = [], [], INLINE_FETCH_TOTAL
        for t in dict.fromkeys(wanted):
            nbytes = t.nbytes
            if nbytes <= INLINE_FETCH_BYTES and nbytes <= budget:
                inline.append(t._id)
                budget -= nbytes
            else:
                streamed.append(t._id)
        found: dict = {}
        if inline:
            request = pb.FetchRequest(session_id=self._id, ids=inline, grad=grad,
                                      encoding=pb.ENCODING_RAW)
            response = self._roundtrip(fetch=request)
            for chunk in response.fetched:
                found[chunk.id] = None if chunk.none else array_from_tensor_data(chunk.tensor)
                self.stats.bytes_down += 0 if chunk.none else found[chunk.id].nbytes
        elif streamed:
            self._roundtrip()  # the ops that make them must have run, errors surfaced
        if streamed:
            found.update(self._fetch_stream(streamed, grad))
        if grad:
            for t in wanted:
                if found.get(t._id) is None:
                    t._has_grad = False
        return [found.get(t._id) for t in tensors]

    def _fetch_stream(self, ids: list, grad: bool) -> dict:
        request = pb.FetchRequest(session_id=self._id, ids=ids, grad=grad,
                                  encoding=pb.ENCODING_RAW)
        with self._lock:
            self.stats.waits += 1
            self.stats.fetch_streams += 1
        assembler = _handoff.following(self, lambda: _wire.Assembler().add_all(
            self._client._call_stream("Fetch", request, session_id=self._id)))
        self.stats.bytes_down += sum(a.nbytes for a in assembler.done.values() if a is not None)
        return assembler.done

    # -- autograd -------------------------------------------------------------------------------
    def _backward(self, tensors, grad_tensors, retain_graph, create_graph, inputs) -> None:
        _grads.backward(self, tensors, grad_tensors, retain_graph, create_graph, inputs)

    def _autograd_grad(self, *args) -> tuple:  # outputs, inputs, grad_outputs, ... (torch's)
        return _grads.grad(self, *args)

    def _bind_grad(self, t: RemoteTensor) -> RemoteTensor:
        """A proxy for `t.grad`, bound by a buffered "grad" op."""
        out_id = self._new_id()
        if t._grad_graph:  # made with create_graph: its grad_fn is only known to the server
            self._send("grad", (t,), (out_id,), {})
            return from_info(self, self._list([out_id])[0], owned=True)
        out = output_proxy(self, out_id, t._shape, t.dtype, t._device, None)
        self._send("grad", (t,), (out_id,), {})
        return out

    # -- server-side tensor tables --------------------------------------------------------------
    def _list(self, ids=()) -> list:
        response = self._roundtrip(list=pb.ListTensorsRequest(ids=list(ids)))
        return list(response.tensors)

    def get(self, tensor_id: str) -> RemoteTensor:
        """A proxy for a tensor the session already holds, e.g. one made with grpcurl.

        Proxies of ids this client did not create are borrowed: collecting them releases
        nothing on the server.

        >>> x = s.tensor([1., 2.])
        >>> s.get(x.id) is x
        True
        """
        proxy = self._proxy(tensor_id)
        if proxy is not None:
            return proxy
        infos = [i for i in self._list([tensor_id]) if i.id == tensor_id]
        if not infos:
            raise InvalidArgumentError(f"session {self._id} holds no tensor {tensor_id!r}")
        return from_info(self, infos[0])

    def tensors(self) -> dict:
        """Every tensor id the session holds, mapped to a proxy.

        >>> x = s.tensor([1., 2.])
        >>> x.id in s.tensors()
        True
        """
        return {i.id: from_info(self, i) if (p := self._proxy(i.id)) is None else p
                for i in self._list()}


def _operand(x):
    """A Python number operand as the wire takes it (an int must fit int64)."""
    return x if type(x) is not int or INT64_MIN <= x <= INT64_MAX else check_int(x)


def _check_attr(value) -> None:
    """Op attrs travel as JSON: numbers, strings, bools, None, dtypes and lists of them."""
    if isinstance(value, (tuple, list)):
        for v in value:
            if type(v) not in _SCALARS:
                _check_attr(v)
    elif isinstance(value, TensorAPI):
        raise InvalidArgumentError("tensor-valued op attributes cannot be sent to the server")
    elif not isinstance(value, (DType, int, float)):
        if not isinstance(value, np.generic):
            raise InvalidArgumentError(
                f"op attribute of type {type(value).__name__} cannot be sent to the server"
            )
