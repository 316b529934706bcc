"""Session: one server session, its op buffer and its Pipeline stream.

Building a graph appends OpCalls to a buffer; `_flush` sends the buffer (and the ids of
collected proxies) as one PipelineRequest without waiting. Calls that need the server's answer
(`item`, `numpy`, `backward`, `fetch`, ...) send a request with a `then` action and block for
its response, reading the stream's responses (in order) itself. An error in a request nobody
waits for is kept and raised at the next wait, naming the op and the user's line that made it.
"""

from __future__ import annotations

import collections
import itertools
import queue
import secrets
import threading
import weakref
from dataclasses import dataclass

import numpy as np
from gradserve.engine import AutogradError, InvalidArgumentError, as_dtype, get_op, is_grad_enabled
from gradserve.engine._dtype import default_float, from_numpy_dtype
from gradserve.engine._shape import parse_size
from gradserve.v1 import gradserve_pb2 as pb

from . import _wire
from ._errors import ConnectionError, GradserveError, SessionLostError
from ._tensor import RemoteTensor, apply, backward_nodes, caller_site, from_info

_NOT_WALKED = object()
MAX_BATCH_OPS = 512  # auto-flush when the buffer holds this many ops
MAX_BATCH_BYTES = 2 << 20  # ... or this many bytes of inline tensor data
INLINE_UPLOAD_BYTES = 1 << 20  # s.tensor data below this rides inline in an OpCall
INLINE_FETCH_BYTES = 1 << 20  # tensors up to this come back inside a Pipeline response
INLINE_FETCH_TOTAL = 3 << 20  # ... as long as one response stays below this
CHUNK_BYTES = 1 << 20  # Upload chunk size
MAX_IN_FLIGHT = 64  # requests sent without waiting before a sender blocks (backpressure)
CLOSE_TIMEOUT = 10.0  # seconds CloseSession may take (it also runs at interpreter exit)


@dataclass
class Stats:
    """What a session cost on the wire; `waits` counts the calls that blocked on the server.

    >>> before = s.stats.waits
    >>> y = (s.ones(3) * 2).sum()  # buffered
    >>> s.stats.waits - before
    0
    >>> y.item()
    6.0
    >>> s.stats.waits - before
    1
    """

    waits: int = 0
    requests: int = 0
    ops: int = 0
    releases: int = 0
    uploads: int = 0
    fetch_streams: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class _Pipeline:
    """The bidirectional stream: a queue feeds requests; the threads that need answers read them.

    There is no reader thread: a caller that waits reads responses off the stream itself (one
    reader at a time; other waiters sleep until theirs has been read), so a reply wakes the
    thread that waits for it directly. Responses nobody waits for are read on the way to one
    that somebody does, or when MAX_IN_FLIGHT of them are outstanding.
    """

    _PENDING = object()

    def __init__(self, client, session_id: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self._sent: dict[int, list] = {}  # seq -> its OpCalls, to name a failing op
        self._waiting: dict[int, object] = {}  # seq -> response once it arrived
        self._deferred: list[tuple[int, GradserveError]] = []  # errors nobody waited for
        self._broken: GradserveError | None = None
        self.reported = False  # the break was raised to the caller: a new stream may replace it
        self._closing = False
        self._ended = False  # the stream finished after close()
        self._reading = False  # a thread is reading the stream
        self._unanswered = 0  # requests sent without a waiter whose response is still out
        self._stream = client._call_stream("Pipeline", self._requests(), session_id=session_id)
        self._responses = iter(self._stream)

    def _requests(self):
        while True:
            request = self._queue.get()
            if request is None:
                return
            yield request

    def _pump(self, done) -> None:
        """With `_cond` held: read responses until `done()`, or until the stream is over.

        One thread reads at a time, without the lock; the others wait for it to deliver."""
        while not done() and self._broken is None and not self._ended:
            if self._reading:
                self._cond.wait()
                continue
            self._reading = True
            self._cond.release()
            try:
                self._read_one()
            finally:
                self._cond.acquire()
                self._reading = False
                self._cond.notify_all()

    def _read_one(self) -> None:
        try:
            response = next(self._responses)
        except StopIteration:
            if self._closing:
                with self._cond:
                    self._ended = True
                return
            self._fail(ConnectionError("the server closed the session's pipeline stream"))
        except Exception as e:  # the stream is gone: every waiter must hear about it
            if not isinstance(e, GradserveError):
                e = ConnectionError(f"the session's pipeline failed: {type(e).__name__}: {e}")
            self._fail(e)
        else:
            self._deliver(response)

    def _fail(self, error: GradserveError) -> None:
        with self._cond:
            if self._broken is None:
                self._broken = error

    def _deliver(self, response) -> None:
        with self._cond:
            seq = response.seq
            ops = self._sent.pop(seq, ())
            err = _wire.error_value(response.error, ops) if response.HasField("error") else None
            if seq in self._waiting:
                self._waiting[seq] = (response, err)
            else:
                if err is not None:
                    self._deferred.append((seq, err))
                self._unanswered -= 1

    def submit(self, request, ops: list, wait: bool) -> int:
        """Send `request`; must be called under the session lock so seqs go out in order."""
        with self._cond:
            if not wait:  # backpressure: read answers until few enough are outstanding
                self._pump(lambda: self._unanswered < MAX_IN_FLIGHT)
            if self._broken is not None:
                self.reported = True
                raise self._broken
            seq = next(self._seq)
            request.seq = seq
            if ops:
                self._sent[seq] = ops
            if wait:
                self._waiting[seq] = self._PENDING
            else:
                self._unanswered += 1
        self._queue.put(request)
        return seq

    def wait(self, seq: int):
        """Block for response `seq`; raise the first error of it or of any earlier request."""
        with self._cond:
            self._pump(lambda: self._waiting[seq] is not self._PENDING)
            result = self._waiting.pop(seq)
            earlier = [e for s, e in self._deferred if s < seq]
            self._deferred = [(s, e) for s, e in self._deferred if s > seq]
        if earlier:
            raise earlier[0]
        if result is self._PENDING:
            self.reported = True
            raise self._broken or ConnectionError("the session's pipeline was closed")
        response, err = result
        if err is not None:
            raise err
        return response

    def close(self) -> None:
        """End the stream after what was sent; its answers are read (for up to 5 s) so that
        the server runs all of it, then the call is cancelled if it has not ended."""
        self._closing = True
        self._queue.put(None)
        drain = threading.Thread(target=self._drain, name="gradserve-pipe-close", daemon=True)
        drain.start()
        drain.join(timeout=5)
        if drain.is_alive():
            self._stream.cancel()

    def _drain(self) -> None:
        with self._cond:
            self._pump(lambda: False)


class Session:
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
        self._ops: list = []
        self._op_bytes = 0
        self._releases: collections.deque = collections.deque()
        self._proxies: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._pipe: _Pipeline | None = None
        self._closed = False
        self._grad_epoch = 0  # bumped by backward: cached `.grad` proxies are stale
        self.stats = Stats()

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

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
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
            self._client._call("CloseSession", pb.SessionRef(session_id=self._id),
                               session_id=self._id, timeout=CLOSE_TIMEOUT)
        except SessionLostError:
            pass  # already gone (reclaimed, or closed by another client): the goal is met

    def _disconnect(self) -> bool:
        """Stop using the session without closing it on the server; False if already done."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._ops.clear()
            self._releases.clear()
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        self._client._forget(self)
        return True

    def info(self) -> dict:
        """The server's view of the session: device, owner, tensor_count, bytes, idle/ttl.

        >>> s.info()["device"]
        'cpu'
        """
        self._check_open()
        msg = self._client._call("DescribeSession", pb.SessionRef(session_id=self._id),
                                 session_id=self._id)
        return {"session_id": msg.session_id, "device": msg.device, "owner": msg.owner,
                "tensor_count": msg.tensor_count, "bytes": msg.bytes,
                "idle_seconds": msg.idle_seconds, "ttl_seconds": msg.ttl_seconds}

    def _check_open(self) -> None:
        if self._closed:
            raise SessionLostError(f"session {self._id} is closed")

    # -- what RemoteTensor calls ------------------------------------------------------------
    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._counter)}"

    def _track(self, proxy: RemoteTensor) -> None:
        self._proxies[proxy._id] = proxy

    def _release_later(self, tensor_id: str) -> None:
        if not self._closed:
            self._releases.append(tensor_id)  # deque.append: atomic, no lock (runs in __del__)

    def _send(self, op: str, inputs: tuple, outputs: tuple, attrs: dict, *,
              inplace: bool = False, data=None) -> None:
        """Buffer one OpCall; flushes (without waiting) when the buffer is full."""
        call = pb.OpCall(op=op, inputs=[_wire.operand(x) for x in inputs], outputs=outputs,
                         no_grad=not is_grad_enabled(), inplace=inplace, site=caller_site(),
                         data=data)
        if attrs:
            _wire.fill_attrs(call.attrs, attrs)
        size = data.ByteSize() if data is not None else 0
        with self._lock:
            self._check_open()
            if size and self._op_bytes + size > MAX_BATCH_BYTES:
                self._flush_locked()
            self._ops.append(call)
            self._op_bytes += size
            if len(self._ops) >= MAX_BATCH_OPS or self._op_bytes >= MAX_BATCH_BYTES:
                self._flush_locked()

    def _flush(self) -> None:
        """Send buffered ops and pending releases now, without waiting."""
        with self._lock:
            self._check_open()
            self._flush_locked()

    def _flush_locked(self, wait: bool = False, **then) -> int | None:
        ops, self._ops, self._op_bytes = self._ops, [], 0
        releases = []
        while self._releases:
            try:
                releases.append(self._releases.popleft())
            except IndexError:
                break
        if not (ops or releases or then or wait):
            return None
        request = pb.PipelineRequest(session_id=self._id, ops=ops, release=releases, **then)
        if self._pipe is None or self._pipe.reported:
            # A stream that broke (a dropped connection) was reported to the caller once; the
            # session lives on the server, so carry on over a new stream.
            self._pipe = _Pipeline(self._client, self._id)
        try:
            seq = self._pipe.submit(request, ops, wait)
        except GradserveError:
            self._releases.extend(releases)  # the ids are still bound: release them later
            raise
        stats = self.stats
        stats.requests += 1
        stats.ops += len(ops)
        stats.releases += len(releases)
        stats.bytes_up += sum(op.data.ByteSize() for op in ops if op.HasField("data"))
        return seq

    def _roundtrip(self, **then):
        """Send the buffer with a `then` action (or none: a barrier) and wait for the reply."""
        with self._lock:
            self._check_open()
            seq = self._flush_locked(wait=True, **then)
            pipe = self._pipe
            self.stats.waits += 1
        return pipe.wait(seq)

    def synchronize(self) -> None:
        """Wait until the server ran everything sent so far; raise any error it met.

        >>> y = s.ones(2).to("cuda:7")  # not a device of this server
        >>> s.synchronize()
        Traceback (most recent call last):
        ...
        InvalidArgumentError: device cuda:7 is not served here (devices: cpu) ...
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
                found[chunk.id] = None if chunk.none else _wire.array_from(chunk.tensor)
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
        assembler = _wire.Assembler()
        with self._lock:
            self.stats.waits += 1
            self.stats.fetch_streams += 1
        for chunk in self._client._call_stream("Fetch", request, session_id=self._id):
            assembler.add(chunk)
        self.stats.bytes_down += sum(a.nbytes for a in assembler.done.values() if a is not None)
        return assembler.done

    # -- autograd -------------------------------------------------------------------------------
    def _backward(self, tensors, grad_tensors, retain_graph, create_graph, inputs) -> None:
        tensors = _as_list(tensors)
        grads = _as_list(grad_tensors) or [None] * len(tensors)
        roots, root_grads, keep = self._roots(tensors, grads)
        inputs = _as_list(inputs)
        if inputs is not None and not inputs:
            raise AutogradError("`inputs` argument to `backward()` cannot be empty.")
        request = pb.BackwardRequest(session_id=self._id, tensors=roots, grad_tensors=root_grads,
                                     create_graph=bool(create_graph),
                                     inputs=[self._own(t)._id for t in inputs or ()])
        if retain_graph is not None:
            request.retain_graph = bool(retain_graph)
        response = self._roundtrip(backward=request)
        del keep  # gradients uploaded for the call stay bound until it ran
        self._grad_epoch += 1
        # What the engine did to each .grad (torch's AccumulateGrad): a grad made by an earlier
        # backward without create_graph is added into in place, so the proxy the user holds
        # stays `.grad`, one version up if the call reached it (told from the local image of
        # the graph). Any other grad the call reached is a new tensor: rebind on next use.
        nodes = _NOT_WALKED
        for tensor_id in response.backward.grads_defined:
            proxy = self._proxies.get(tensor_id)
            if proxy is None:
                continue
            had, proxy._has_grad = proxy._has_grad, True
            cached = proxy._grad_cache
            if had and not create_graph and proxy._grad_owned and (
                    cached is None or not cached[1].requires_grad):
                if cached is not None:
                    if nodes is _NOT_WALKED:
                        nodes = backward_nodes(tensors, inputs)
                    if nodes is not None and proxy._grad_written(nodes, inputs):
                        cached[1]._vc.value += 1
                    proxy._grad_cache = (self._grad_epoch, cached[1])
                continue
            proxy._grad_cache = None  # let go of the id bound to the old grad now
            if had:
                if nodes is _NOT_WALKED:
                    nodes = backward_nodes(tensors, inputs)
                if nodes is None:  # not known whether the call reached it
                    proxy._grad_owned = proxy._grad_owned and not create_graph
                    proxy._grad_graph = proxy._grad_graph or bool(create_graph)
                    continue
                if not proxy._grad_written(nodes, inputs):
                    continue
            # a new grad (made writable by the engine), or the old one summed with this call's
            proxy._grad_owned = not create_graph
            proxy._grad_graph = bool(create_graph)

    def _autograd_grad(self, outputs, inputs, grad_outputs, retain_graph, create_graph,
                       allow_unused) -> tuple:
        outputs = _as_list(outputs)
        inputs = [self._own(t) for t in _as_list(inputs)]
        grads = _as_list(grad_outputs) or [None] * len(outputs)
        roots, root_grads, keep = self._roots(outputs, grads)
        results = [self._new_id() for _ in inputs]
        request = pb.GradRequest(session_id=self._id, outputs=roots, inputs=[t._id for t in inputs],
                                 grad_outputs=root_grads, create_graph=bool(create_graph),
                                 allow_unused=bool(allow_unused), results=results)
        if retain_graph is not None:
            request.retain_graph = bool(retain_graph)
        defined = list(self._roundtrip(grad=request).grad.defined)
        del keep
        defined += [True] * (len(inputs) - len(defined))
        if create_graph and any(defined):  # results may carry a graph: ask what they are
            infos = self._list([r for r, d in zip(results, defined, strict=True) if d])
            by_id = {info.id: info for info in infos}
            return tuple(from_info(self, by_id[r], owned=True) if d else None
                         for r, d in zip(results, defined, strict=True))
        return tuple(RemoteTensor(self, r, t._shape, t._dtype, t._device) if d else None
                     for r, t, d in zip(results, inputs, defined, strict=True))

    def _roots(self, tensors: list, grads: list) -> tuple[list, list, list]:
        """Ids of the roots and of their gradients, with torch's checks done locally; and the
        gradient proxies, which the caller keeps alive until the call ran (a collected proxy
        is released with the very request that names it)."""
        for i, t in enumerate(tensors):
            if not self._own(t).requires_grad:
                raise AutogradError(
                    f"element {i} of tensors does not require grad and does not have a grad_fn"
                )
        if len(grads) != len(tensors):
            raise AutogradError(f"got {len(tensors)} tensors and {len(grads)} gradients")
        roots, root_grads, keep = [], [], []
        for i, (t, g) in enumerate(zip(tensors, grads, strict=True)):
            roots.append(t._id)
            if g is None:
                if t.numel() != 1:
                    raise AutogradError("grad can be implicitly created only for scalar outputs")
                if not t.dtype.is_floating_point:
                    raise AutogradError(
                        "grad can be implicitly created only for real scalar outputs but got "
                        f"{t.dtype}"
                    )
                continue
            if not isinstance(g, RemoteTensor):
                g = self.tensor(g, dtype=t.dtype)
            self._own(g)
            if g.shape != t.shape:
                raise AutogradError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {_size(g.shape)} and "
                    f"output[{i}] has a shape of {_size(t.shape)}."
                )
            root_grads.append(g._id)
            keep.append(g)
        if root_grads and len(root_grads) != len(roots):
            raise AutogradError(
                "gradserve needs either every gradient or none of them for non-scalar roots"
            )
        return roots, root_grads, keep

    def _own(self, t) -> RemoteTensor:
        if not isinstance(t, RemoteTensor) or t._session is not self:
            raise InvalidArgumentError(
                f"expected a RemoteTensor of session {self._id}, got {type(t).__name__}"
            )
        return t

    def _bind_grad(self, t: RemoteTensor) -> RemoteTensor:
        """A proxy for `t.grad`, bound by a buffered "grad" command."""
        out_id = self._new_id()
        if t._grad_graph:  # made with create_graph: its grad_fn is only known to the server
            self._send("grad", (t,), (out_id,), {})
            return from_info(self, self._list([out_id])[0], owned=True)
        out = RemoteTensor(self, out_id, t._shape, t._dtype, t._device)
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
        proxy = self._proxies.get(tensor_id)
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
        out = {}
        for info in self._list():
            proxy = self._proxies.get(info.id)
            out[info.id] = proxy if proxy is not None else from_info(self, info)
        return out

    # -- factories ---------------------------------------------------------------------------------
    def tensor(self, data, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A new leaf holding a copy of `data` (numbers, nested lists, numpy arrays).

        >>> x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> x.shape, x.dtype
        ((2, 2), gradserve.float32)
        """
        if isinstance(data, RemoteTensor):
            self._own(data)
            from gradserve.engine import no_grad

            with no_grad():
                out = data.detach().clone()
                if dtype is not None:
                    out = out.to(dtype=dtype)
            return out.requires_grad_(requires_grad) if requires_grad else out
        from gradserve import engine

        return self._upload(engine.tensor(data, dtype=dtype).numpy(), requires_grad)

    def from_numpy(self, array: np.ndarray, requires_grad: bool = False) -> RemoteTensor:
        """A new leaf with the values and dtype of a numpy array (copied to the server).

        >>> s.from_numpy(np.arange(3.0)).dtype
        gradserve.float64
        """
        if not isinstance(array, np.ndarray):
            raise InvalidArgumentError(f"expected np.ndarray (got {type(array).__name__})")
        dtype = as_dtype(array.dtype)
        return self._upload(array.astype(dtype.np, copy=False), requires_grad)

    def _upload(self, arr: np.ndarray, requires_grad: bool) -> RemoteTensor:
        dtype = from_numpy_dtype(arr.dtype)
        if requires_grad and not dtype.is_floating_point:
            raise AutogradError(
                "Only Tensors of floating point and complex dtype can require gradients"
            )
        self._check_open()
        out = RemoteTensor(self, self._new_id(), arr.shape, dtype, self._device,
                           requires_grad=bool(requires_grad))
        if arr.nbytes < INLINE_UPLOAD_BYTES:
            self._send("tensor", (), (out._id,), {"requires_grad": bool(requires_grad)},
                       data=_wire.tensor_data(arr, dtype))
            return out
        self._flush()
        with self._lock:
            self.stats.waits += 1
            self.stats.uploads += 1
            self.stats.bytes_up += arr.nbytes
        requests = _wire.upload_requests(self._id, out._id, arr, dtype, bool(requires_grad),
                                         CHUNK_BYTES)
        self._client._call("Upload", requests, session_id=self._id)
        return out

    def _factory(self, name: str, requires_grad: bool, **attrs) -> RemoteTensor:
        attrs["device"] = self._device
        out = apply(get_op(name), (), attrs, session=self)
        return out.requires_grad_(True) if requires_grad else out

    def zeros(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A tensor of zeros.

        >>> s.zeros(2, 3).shape
        (2, 3)
        """
        return self._factory("zeros", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def ones(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A tensor of ones.

        >>> s.ones(3, requires_grad=True).requires_grad
        True
        """
        return self._factory("ones", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def empty(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """An uninitialised tensor (zeros on the server).

        >>> s.empty(4).shape
        (4,)
        """
        return self._factory("empty", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def full(self, size, fill_value, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A tensor filled with `fill_value`.

        >>> s.full((2, 2), 7).dtype
        gradserve.int64
        """
        return self._factory("full", requires_grad, shape=parse_size((size,)), value=fill_value,
                             dtype=None if dtype is None else as_dtype(dtype).name)

    def randn(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Standard normal samples from the session's generator.

        >>> s.randn(2, 2).shape
        (2, 2)
        """
        return self._factory("randn", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def rand(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Uniform [0, 1) samples from the session's generator.

        >>> s.rand(3).shape
        (3,)
        """
        return self._factory("rand", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def arange(self, start, end=None, step=1, dtype=None,
               requires_grad: bool = False) -> RemoteTensor:
        """Evenly spaced values in [start, end).

        >>> s.arange(5).tolist()
        [0, 1, 2, 3, 4]
        """
        if end is None:
            start, end = 0, start
        return self._factory("arange", requires_grad, start=start, end=end, step=step,
                             dtype=None if dtype is None else as_dtype(dtype).name)

    def eye(self, n: int, m: int | None = None, dtype=None,
            requires_grad: bool = False) -> RemoteTensor:
        """The identity matrix.

        >>> s.eye(2).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
        """
        return self._factory("eye", requires_grad, n=int(n), m=None if m is None else int(m),
                             dtype=_float(dtype).name)

    def zeros_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Zeros with `t`'s shape and dtype.

        >>> s.zeros_like(s.ones(2, 3)).shape
        (2, 3)
        """
        return self.zeros(*t.shape, dtype=t.dtype if dtype is None else dtype,
                          requires_grad=requires_grad)

    def ones_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Ones with `t`'s shape and dtype.

        >>> s.ones_like(s.zeros(2), dtype=gs.int64).tolist()
        [1, 1]
        """
        return self.ones(*t.shape, dtype=t.dtype if dtype is None else dtype,
                         requires_grad=requires_grad)

    def randn_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Normal samples with `t`'s shape and dtype.

        >>> s.randn_like(s.ones(2, 3)).shape
        (2, 3)
        """
        return self.randn(*t.shape, dtype=t.dtype if dtype is None else dtype,
                          requires_grad=requires_grad)

    def rand_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Uniform samples with `t`'s shape and dtype.

        >>> s.rand_like(s.ones(4)).shape
        (4,)
        """
        return self.rand(*t.shape, dtype=t.dtype if dtype is None else dtype,
                         requires_grad=requires_grad)

    def full_like(self, t, fill_value, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """`fill_value` with `t`'s shape and dtype.

        >>> s.full_like(s.ones(2), 0.5).tolist()
        [0.5, 0.5]
        """
        return self.full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                         requires_grad=requires_grad)

    def manual_seed(self, seed: int) -> None:
        """Seed this session's own random generator (other sessions are unaffected).

        >>> s.manual_seed(0); a = s.randn(3).tolist()
        >>> s.manual_seed(0); s.randn(3).tolist() == a
        True
        """
        self._send("manual_seed", (), (), {"seed": int(seed)})


def _float(dtype):
    return as_dtype(dtype) if dtype is not None else default_float


def _as_list(x):
    if x is None:
        return None
    if isinstance(x, RemoteTensor) or not isinstance(x, (list, tuple)):
        return [x]
    return list(x)


def _size(shape) -> str:
    return f"torch.Size([{', '.join(map(str, shape))}])"
