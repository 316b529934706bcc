"""connect() and Client: a channel to a gradserve server, and the one helper every RPC uses."""

from __future__ import annotations

import atexit
import secrets
import threading
import weakref

import grpc
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1 import gradserve_pb2_grpc

from . import _handoff
from ._errors import ConnectionError, GradserveError, SessionMovedError
from ._session import Session
from ._wire import rpc_errors

_MAX_MESSAGE = 64 << 20
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]
_LIVE: weakref.WeakSet = weakref.WeakSet()
# The header deploy/envoy/envoy.yaml's stateful-session filter reads and writes.
ROUTE_HEADER = "x-gradserve-route"


def connect(target: str = "127.0.0.1:50051", *, token: str | None = None, tls=None,
            timeout: float | None = 5.0, options: list | None = None,
            route_header: str | None = ROUTE_HEADER) -> Client:
    """Open a connection to a gradserve server and wait (up to `timeout` s) until it is up.

    `token` is sent as `authorization: Bearer <token>`; `tls=True` uses the system's root
    certificates, or pass `grpc.ssl_channel_credentials(...)`. Raises `gs.ConnectionError`
    when nothing answers in time (`timeout=None` skips the check).

    Behind a proxy that pins sessions to replicas (deploy/envoy), the proxy answers
    CreateSession with a `route_header` naming the replica; the client sends it back on every
    later call of that session. `route_header=None` ignores it.

    >>> import gradserve as gs
    >>> client = gs.connect("127.0.0.1:50051")
    >>> with client.session() as s:
    ...     print(s.tensor([1., 2.]).sum().item())
    3.0
    """
    opts = _CHANNEL_OPTIONS + list(options or [])
    if tls:
        creds = grpc.ssl_channel_credentials() if tls is True else tls
        channel = grpc.secure_channel(target, creds, options=opts)
    else:
        channel = grpc.insecure_channel(target, options=opts)
    if timeout is not None:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            channel.close()
            raise ConnectionError(
                f"could not reach a gradserve server at {target} within {timeout:g} s"
                + (" (is it serving TLS?)" if tls else "")
            ) from None
    return Client(channel, target, token, route_header)


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
                 route_header: str | None = ROUTE_HEADER) -> None:
        self._channel = channel
        self._stub = gradserve_pb2_grpc.GradserveServiceStub(channel)
        # Upload's messages arrive serialized (_wire.upload_requests frames the big chunks
        # itself, to copy the tensor once), so this call sends them as they are.
        self._raw_upload = channel.stream_unary(
            "/gradserve.v1.GradserveService/Upload", request_serializer=_as_is,
            response_deserializer=pb.UploadResponse.FromString)
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
        proposed = secrets.token_urlsafe(16)
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
                if s._owned:
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
        return (("x-session-id", session_id), *pinned, *self._auth)

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
                response, rpc = call.with_call(request, metadata=self._metadata(session_id),
                                               timeout=timeout, wait_for_ready=wait_for_ready)
        finally:
            if method == "CloseSession":  # closed or gone: its route is of no more use
                self._routes.pop(session_id, None)
        return response, dict(rpc.initial_metadata() or ())

    def _call_stream(self, method: str, request, *, session_id: str | None = None):
        """A server- or bidi-streaming RPC as an iterator; failures become exceptions.

        Returns the call object (so its owner can cancel it) wrapped to translate errors.
        """
        if self._closed:
            raise ConnectionError("this gradserve client is closed")
        call = getattr(self._stub, method)(request, metadata=self._metadata(session_id))
        return _TranslatedStream(call, self._pinned(session_id))


class _TranslatedStream:
    """Iterates a streaming call's responses, turning gRPC failures into typed exceptions."""

    def __init__(self, call, pinned: str | None = None) -> None:
        self._call = call
        self._pinned = pinned

    def __iter__(self):
        with rpc_errors(pinned=self._pinned):
            yield from self._call

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
