"""connect() and Client: a channel to a gradserve server, and the one helper every RPC uses."""

from __future__ import annotations

import atexit
import threading
import weakref

import grpc
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1 import gradserve_pb2_grpc
from gradserve.v1.codec import MAX_MESSAGE_BYTES, SESSION_ID_HEADER, new_session_id

from . import _handoff, _watch
from ._errors import ConnectionError, GradserveError, SessionMovedError
from ._session import Session
from ._wire import error_from_rpc, rpc_errors

# Keepalive pings find a dead connection that nobody waits on. gRPC servers count pings
# closer than 5 minutes apart as abuse unless they allow more (`grpc.http2.
# min_recv_ping_interval_without_data_ms`) and then close the connection, so the client keeps
# to that pace; calls that wait are watched faster by `_watch`, whatever the server allows.
KEEPALIVE_S = 300
DEFAULT_TIMEOUT = 10.0  # seconds a server may stay silent (see `connect`)
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", KEEPALIVE_S * 1000),
    ("grpc.http2.max_pings_without_data", 0),  # an idle session's stream is pinged too
]
_LIVE: weakref.WeakSet = weakref.WeakSet()
# The header deploy/envoy/envoy.yaml's stateful-session filter reads and writes.
ROUTE_HEADER = "x-gradserve-route"
_SCHEMES = ("dns:", "unix:", "unix-abstract:", "ipv4:", "ipv6:", "vsock:")
TARGET_FORMS = ('"host:port" (e.g. "127.0.0.1:50051", "[::1]:50051", "gradserve.example:443"), '
                '"dns:///host:port" or "unix:/path/to/socket"')


def connect(target: str = "127.0.0.1:50051", *, token: str | None = None, tls=None,
            timeout: float | None = DEFAULT_TIMEOUT, options: list | None = None,
            route_header: str | None = ROUTE_HEADER) -> Client:
    """Open a connection to a gradserve server and wait until it answers.

    `target` is "host:port" ("127.0.0.1:50051", "[::1]:50051"), or a gRPC name with its
    scheme ("dns:///host:port", "unix:/path"); anything else (a URL such as
    "http://host:port", a host without a port) raises `gs.ConnectionError` with
    reason "bad_target", saying what a target looks like.

    `token` is sent as `authorization: Bearer <token>`; `tls=True` uses the system's root
    certificates, or pass `grpc.ssl_channel_credentials(...)`.

    `timeout` (default 10 s) bounds every wait on the server: connecting, and any call during
    which the server says nothing for that long and does not answer a health probe either
    (a busy server answers the probe: a long backward is not cut short). Such a call raises
    `gs.ConnectionError` with reason "unresponsive"; a connection that is refused raises at
    once, reason "unreachable". `timeout=None` waits forever and skips the connect check.
    Keepalive pings (every 5 minutes, what gRPC servers allow by default) find dead
    connections that nothing waits on; `options` adds or overrides gRPC channel options.

    Behind a proxy that pins sessions to replicas (deploy/envoy), the proxy answers
    CreateSession with a `route_header` naming the replica; the client sends it back on every
    later call of that session. `route_header=None` ignores it.

    >>> import gradserve as gs
    >>> client = gs.connect("127.0.0.1:50051")
    >>> with client.session() as s:
    ...     print(s.tensor([1., 2.]).sum().item())
    3.0
    """
    _check_target(target)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"gs.connect: timeout must be a positive number of seconds or None, "
                         f"not {timeout!r}")
    opts = _channel_options(timeout, options)
    if tls:
        creds = grpc.ssl_channel_credentials() if tls is True else tls
        channel = grpc.secure_channel(target, creds, options=opts)
    else:
        channel = grpc.insecure_channel(target, options=opts)
    client = Client(channel, target, token, route_header, timeout)
    if timeout is not None:
        try:
            _wait_ready(client, target, timeout, tls)
        except ConnectionError:
            client.close()
            raise
    return client


def _check_target(target) -> None:
    """Refuse what gRPC would take for another name or wait on in vain (it reads
    "http://h:p" as a DNS name and "host" as "host:443")."""
    ok = isinstance(target, str) and target.strip() == target and target != ""
    if ok and not target.startswith(_SCHEMES):
        host, sep, port = target.rpartition(":")
        ok = (bool(sep and host) and "/" not in target and port.isdigit()
              and 0 < int(port) < 65536
              and (host.startswith("[") and host.endswith("]") or ":" not in host))
    if not ok:
        err = ConnectionError(f"{target!r} is not a gradserve target: a target looks like "
                              f"{TARGET_FORMS}")
        err.code, err.op, err.site, err.reason = 3, None, None, "bad_target"
        raise err


def _channel_options(timeout: float | None, options: list | None) -> list:
    ours = _CHANNEL_OPTIONS + [
        ("grpc.keepalive_timeout_ms", int(1000 * (timeout or 20.0)))]
    theirs = list(options or [])
    given = {name for name, _ in theirs}
    return [o for o in ours if o[0] not in given] + theirs


def _wait_ready(client: Client, target: str, timeout: float, tls) -> None:
    """Return when the server answers a health probe; raise at once when the connection is
    refused (a call that does not wait for readiness fails with gRPC's first failed attempt),
    or after `timeout` when nothing answers.

    A probe, not `channel.subscribe`: subscribing starts gRPC's connectivity-polling thread,
    which `channel.close()` then waits up to 0.2 s for, on every client's exit."""
    code = client._probe_code(timeout)
    if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, None):
        return  # it answered: OK, or a status of its own (auth, no health service)
    if code != grpc.StatusCode.DEADLINE_EXCEEDED:
        err = ConnectionError(
            f"could not reach a gradserve server at {target}: the connection was refused "
            "or failed (is the server running, on that port?"
            + (" is it serving TLS?)" if tls else ")"))
        err.reason = "unreachable"
    else:
        err = ConnectionError(
            f"no gradserve server answered at {target} within {timeout:g} s (the connection "
            "is not refused, but nothing completes it: a stopped or hung server, a host that "
            "drops packets" + (", or a server that does not serve TLS)" if tls else ")"))
        err.reason = "unresponsive"
    err.code, err.op, err.site = 14, None, None
    raise err


def _as_is(message: bytes) -> bytes:
    return message


class Client:
    """A connection to one gradserve server; makes and re-attaches sessions.

    >>> client = gs.connect("127.0.0.1:50051")
    >>> s = client.session(device="cpu")
    >>> again = gs.connect("127.0.0.1:50051").attach(s.id)
    >>> client.close()
    """

    def __init__(self, channel, target: str, token: str | None = None,
                 route_header: str | None = ROUTE_HEADER,
                 timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._channel = channel
        self._timeout = timeout  # how long the server may stay silent (`_watch`)
        self._stub = gradserve_pb2_grpc.GradserveServiceStub(channel)
        # Upload's messages arrive serialized (_wire.upload_requests frames the big chunks
        # itself, to copy the tensor once), so this call sends them as they are.
        self._raw_upload = channel.stream_unary(
            "/gradserve.v1.GradserveService/Upload", request_serializer=_as_is,
            response_deserializer=pb.UploadResponse.FromString)
        # Fetch's messages are taken as they arrive: _wire.split_fetch reads a chunk's bytes
        # in place, so they are copied once, into the tensor.
        self._raw_fetch = channel.unary_stream(
            "/gradserve.v1.GradserveService/Fetch",
            request_serializer=pb.FetchRequest.SerializeToString, response_deserializer=_as_is)
        # Asked whether the server lives; any answer at all says it does, so the bytes are
        # not even parsed (an empty HealthCheckRequest is b"").
        self._health = channel.unary_unary("/grpc.health.v1.Health/Check",
                                           request_serializer=_as_is,
                                           response_deserializer=_as_is)
        self._target = target
        self._auth = (("authorization", f"Bearer {token}"),) if token else ()
        self._route_header = route_header.lower() if route_header else None
        self._routes: dict[str, str] = {}  # session id -> the proxy's route header value
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self._closed = False
        _LIVE.add(self)

    @property
    def target(self) -> str:
        return self._target

    def __repr__(self) -> str:
        return f"<gradserve.Client {self._target}{' (closed)' if self._closed else ''}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sessions -----------------------------------------------------------------------------
    def session(self, device: str = "cpu") -> Session:
        """Create a session on `device` ("cpu", "cuda", "cuda:1"); it belongs to this caller.

        >>> with client.session(device="cpu") as s:
        ...     s.ones(2).sum().item()
        2.0
        """
        # The id is proposed here so that even CreateSession carries `x-session-id`: a proxy
        # that hashes that header then places the session where its later calls will go.
        proposed = new_session_id()
        info, headers = self._call_with_headers(
            "CreateSession", pb.CreateSessionRequest(device=device or "cpu"),
            session_id=proposed)
        self._learn_route(info.session_id, headers)
        return self._register(Session(self, info, owned=True))

    def attach(self, session_id: str, route: str | None = None) -> Session:
        """Re-attach to a live session (after a dropped connection, or from another process).

        Raises `gs.SessionLostError` if the server no longer has it and `gs.PermissionError`
        if it belongs to another caller. Use `s.get(id)` / `s.tensors()` for its tensors.
        Behind a session-pinning proxy, pass the `route` the creating client holds
        (`client.route(s.id)`); this client already knows the routes of its own sessions.

        >>> x = s.tensor([1., 2.])
        >>> s.synchronize()  # ops are buffered: make sure x has reached the server
        >>> s2 = gs.connect("127.0.0.1:50051").attach(s.id, route=client.route(s.id))
        >>> s2.get(x.id).tolist()
        [1.0, 2.0]
        """
        if route and self._route_header:
            self._routes[session_id] = route
        try:
            info, headers = self._call_with_headers(
                "DescribeSession", pb.SessionRef(session_id=session_id), session_id=session_id)
        except SessionMovedError as moved:  # its server drained: restore it where we reach
            info, headers = _handoff.restore_id(self, session_id, moved), {}
        self._learn_route(session_id, headers)
        return self._register(Session(self, info, owned=False))

    def route(self, session_id: str) -> str | None:
        """The proxy's route for a session of this client, to hand to `attach` in another
        process: behind deploy/envoy, the replica's host:port in base64; None when no proxy
        pins sessions (as here, a direct connection).

        >>> client.route(s.id) is None
        True
        """
        return self._routes.get(session_id)

    def _learn_route(self, session_id: str, headers: dict) -> None:
        route = headers.get(self._route_header) if self._route_header else None
        if route and session_id not in self._routes:
            self._routes[session_id] = route

    def _register(self, session: Session) -> Session:
        with self._lock:
            self._sessions.add(session)
        return session

    def _forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def close(self) -> None:
        """Close the sessions this client created, let go of attached ones, close the channel.

        Idempotent; `with gs.connect(...) as client:` calls it on exit.
        """
        if self._closed:
            return
        with self._lock:
            sessions = list(self._sessions)
        errors = []
        for s in sessions:
            try:
                # a server that stopped answering is not asked again for each session
                if s._owned and not any(getattr(e, "reason", None) == "unresponsive"
                                        for e in errors):
                    s.close()
                else:
                    s._disconnect()
            except GradserveError as e:
                errors.append(e)
        self._closed = True
        self._channel.close()
        _LIVE.discard(self)
        if errors and not isinstance(errors[0], ConnectionError):
            raise errors[0]

    # -- the one RPC helper -----------------------------------------------------------------------
    def _metadata(self, session_id: str | None) -> tuple:
        if session_id is None:
            return self._auth
        route = self._routes.get(session_id)
        pinned = ((self._route_header, route),) if route else ()
        return ((SESSION_ID_HEADER, session_id), *pinned, *self._auth)

    def _pinned(self, session_id: str | None) -> str | None:
        """`session_id` when its calls go through a proxy that pins it to one replica."""
        return session_id if session_id in self._routes else None

    def _call(self, method: str, request, *, session_id: str | None = None, timeout=None,
              wait_for_ready: bool | None = None):
        """A unary (or client-streaming) RPC; failures become gradserve exceptions.
        `wait_for_ready`: wait (up to `timeout`) for a server to answer at all."""
        return self._call_with_headers(method, request, session_id=session_id,
                                       timeout=timeout, wait_for_ready=wait_for_ready)[0]

    def _call_with_headers(self, method: str, request, *, session_id: str | None = None,
                           timeout=None, wait_for_ready: bool | None = None) -> tuple:
        """`_call`, also returning the response's initial metadata as a dict."""
        if self._closed:
            raise ConnectionError("this gradserve client is closed")
        call = self._raw_upload if method == "Upload" else getattr(self._stub, method)
        try:
            with rpc_errors(pinned=self._pinned(session_id)):
                rpc = call.future(request, metadata=self._metadata(session_id),
                                  timeout=timeout, wait_for_ready=wait_for_ready)
                response = self._await(rpc, method, session_id)
        finally:
            if method == "CloseSession":  # closed or gone: its route is of no more use
                self._routes.pop(session_id, None)
        return response, dict(rpc.initial_metadata() or ())

    def _await(self, future, method: str, session_id: str | None = None):
        """The future's result; while it is slow, ask whether the server lives (`_watch`)."""
        limit = self._timeout
        if limit is None:
            return future.result()
        while True:
            try:
                return future.result(timeout=_watch.SILENT * limit)
            except grpc.FutureTimeoutError:
                pass
            if not future.done() and not self._probe(_watch.PROBE * limit, session_id):
                future.cancel()
                raise _watch.unresponsive(self._target, limit, method)

    def _connectivity(self):
        """The channel's state now (a grpc.ChannelConnectivity), or None if it says nothing."""
        states: list = []
        told = threading.Event()

        def seen(state) -> None:
            states.append(state)
            told.set()

        self._channel.subscribe(seen, try_to_connect=False)
        try:
            told.wait(0.25)
        finally:
            self._channel.unsubscribe(seen)
        return states[-1] if states else None

    def _probe(self, deadline: float, session_id: str | None = None) -> bool:
        """Whether the server answers anything within `deadline` seconds; with the session's
        metadata, so that a proxy pinning the session asks the replica that holds it."""
        return self._probe_code(deadline, session_id) != grpc.StatusCode.DEADLINE_EXCEEDED

    def _probe_code(self, deadline: float, session_id: str | None = None):
        """The status a health probe ends with: OK or the server's error (it answers),
        DEADLINE_EXCEEDED (nobody answers), UNAVAILABLE (nobody accepts the connection, or
        it is draining); None when the channel is closed."""
        try:
            self._health(b"", timeout=deadline, metadata=self._metadata(session_id))
        except grpc.RpcError as e:
            return e.code()
        except Exception:  # noqa: BLE001 (a closed channel: the call fails by itself)
            return None
        return grpc.StatusCode.OK

    def _call_stream(self, method: str, request, *, session_id: str | None = None):
        """A server- or bidi-streaming RPC as an iterator; failures become exceptions.
        Fetch's responses come as their bytes (see `_wire.split_fetch`).

        Returns the call object (so its owner can cancel it) wrapped to translate errors.
        """
        if self._closed:
            raise ConnectionError("this gradserve client is closed")
        rpc = self._raw_fetch if method == "Fetch" else getattr(self._stub, method)
        call = rpc(request, metadata=self._metadata(session_id))
        return _TranslatedStream(call, self, session_id)


class _TranslatedStream:
    """Iterates a streaming call's responses, turning gRPC failures into typed exceptions;
    a read that outlives the server raises ConnectionError "unresponsive" (`_watch`)."""

    def __init__(self, call, client, session_id: str | None = None) -> None:
        self._call = call
        self._client = client
        self._session_id = session_id
        self._pinned = client._pinned(session_id)

    def __iter__(self):
        w = _watch.watch(self._client, lambda error: self._call.cancel(), self._session_id)
        responses = iter(self._call)
        try:
            while True:
                if w is not None:
                    w.reading()
                try:
                    response = next(responses)
                except StopIteration:
                    return
                except grpc.RpcError as e:
                    if w is not None and w.error is not None:
                        raise w.error from None
                    raise error_from_rpc(e, self._pinned) from None
                finally:
                    if w is not None:
                        w.heard()
                yield response
        finally:
            _watch.unwatch(w)

    def cancel(self) -> None:
        self._call.cancel()


@atexit.register
def _close_at_exit() -> None:
    # Sessions left open would otherwise linger on the server until their TTL.
    for client in list(_LIVE):
        try:
            client.close()
        except Exception:
            pass
