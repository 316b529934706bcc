"""`create_server`: the gradserve service, gRPC health and reflection on one port.

    >>> server, port = create_server("127.0.0.1:0")
    >>> server.start()
    >>> ...                      # talk to 127.0.0.1:{port}
    >>> server.drain(grace=10)   # or server.stop(grace)

The returned object is a `grpc.Server` that also starts and stops the session reaper, the
device workers and the optional metrics endpoint, and can drain: health goes NOT_SERVING,
new calls get UNAVAILABLE, running calls finish, then it stops. With a state dir, draining
moves the sessions there instead (see `_handoff`).

Every handler takes its request as the bytes that arrived and parses them itself, so a
message that does not parse is INVALID_ARGUMENT from gradserve, never grpcio's INTERNAL
"Exception deserializing request!" (whose error path also kept memory per bad request).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from gradserve import engine
from gradserve.engine import InvalidArgumentError
from gradserve.engine.seam import backend, canonical_device
from gradserve.v1 import gradserve_pb2 as pb
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ._auth import TokenTable
from ._runtime import Runtime
from ._servicer import GradserveServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GradserveService"].full_name
DEFAULT_SESSION_TTL = 900.0
DEFAULT_MAX_SESSIONS = 1024
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
DEFAULT_RPC_THREADS = 128


def resolve_devices(devices: str | Sequence[str]) -> tuple[str, ...]:
    """Canonical device names from "cpu,cuda:0" or a list; "auto" is every visible GPU, or cpu
    when there is none (API.md §1).

    Each CUDA device is checked (cupy installed, ordinal visible); errors raise
    InvalidArgumentError.
    """
    if isinstance(devices, str):
        devices = [d for d in devices.split(",") if d.strip()]
    names: list[str] = []
    for item in devices:
        if item.strip() == "auto":
            found = [f"cuda:{i}" for i in range(engine.cuda_device_count())] or ["cpu"]
        else:
            found = [canonical_device(item)]
        for device in found:
            if device not in names:
                backend(device)  # fails early when cupy or the device is missing
                names.append(device)
    if not names:
        raise engine.InvalidArgumentError("no devices to serve")
    return tuple(names)


_METHOD_KINDS = {  # (client streams, server streams) -> grpc's handler factory
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
# Methods whose handlers take the received bytes as they are, not parsed messages (Upload
# reads its chunks in place: convert.upload_messages), or return bytes already serialized
# (Fetch frames its chunks by hand: convert.fetch_frames); a parse or a message would copy
# each megabyte chunk twice more.
_RAW_REQUESTS = {"Upload"}
_RAW_RESPONSES = {"Fetch"}


def _parse(message_class, data: bytes):
    try:
        return message_class.FromString(data)
    except DecodeError:
        raise InvalidArgumentError(
            f"malformed {message_class.__name__} message ({len(data)} bytes that do not "
            "parse as one)") from None


def _received(requests: Iterator[bytes], message_class=None) -> Iterator:
    """A request stream's messages (parsed when `message_class` is given), ending when the
    caller cancels the call.

    grpc's iterator raises an RpcError then, and keeps it (in the call's state, which the
    handler's frames reach through its context): with the error's traceback, which holds
    those frames, that is a reference cycle per cancelled call, which only the cyclic
    collector frees, and `gradserve serve` runs it rarely. Dropped here without its
    traceback, the stream simply ends; whatever the handler answers goes nowhere."""
    try:
        for message in requests:
            yield message if message_class is None else _parse(message_class, message)
    except grpc.RpcError as e:
        e.with_traceback(None)


def _parsing(servicer: GradserveServicer, handler: Callable, message_class,
             streaming: bool) -> Callable:
    """`handler` taking the request bytes as they arrived: a unary request is parsed before
    the handler runs (INVALID_ARGUMENT when it does not parse), a stream's messages as the
    handler reads them (the InvalidArgumentError is raised where it reads); `message_class`
    None: a stream's bytes are handed on as they are."""
    if streaming:
        def stream(requests: Iterator[bytes], context):
            return handler(_received(requests, message_class), context)

        return stream

    def unary(request: bytes, context):
        try:
            message = _parse(message_class, request)
        except InvalidArgumentError as e:
            servicer.abort_malformed(context, e)
        return handler(message, context)

    return unary


def _service_handler(servicer: GradserveServicer) -> grpc.GenericRpcHandler:
    """The service's method handlers, made from the proto's service descriptor (what the
    generated add_..._to_server does, but every method takes its request bytes unparsed)."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GradserveService"].methods:
        # by descriptor, not by name in gradserve_pb2: DescribeGraph answers a well-known
        # google.protobuf.Struct
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _METHOD_KINDS[method.client_streaming, method.server_streaming]
        handler = getattr(servicer, method.name)
        if method.client_streaming or method.name not in _RAW_REQUESTS:
            handler = _parsing(servicer, handler, None if method.name in _RAW_REQUESTS
                               else request, method.client_streaming)
        handlers[method.name] = make(
            handler, request_deserializer=None,
            response_serializer=None if method.name in _RAW_RESPONSES
            else response.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


class GradserveServer(grpc.Server):
    """A grpc.Server running gradserve; adds `drain`, `runtime`, `port`, `metrics_port`."""

    def __init__(self, server: grpc.Server, runtime: Runtime,
                 health_servicer: health.HealthServicer, metrics=None) -> None:
        self._server = server
        self.runtime = runtime
        self.health = health_servicer
        self.metrics = metrics
        self.port = 0
        self._stopped = threading.Event()

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics is None else self.metrics.port

    # grpc.Server's interface, delegated
    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        return self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name, method_handlers):
        return self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)

    def start(self) -> None:
        """Start serving, the session reaper and the metrics endpoint."""
        self.runtime.start()
        self._server.start()
        if self.metrics is not None:
            self.metrics.start()

    def stop(self, grace: float | None) -> threading.Event:
        """grpc.Server.stop, then the reaper, workers and metrics endpoint stop too."""
        self.health.enter_graceful_shutdown()
        done = self._server.stop(grace)

        def finish() -> None:
            done.wait()
            self._shutdown_runtime()

        threading.Thread(target=finish, name="gradserve-stop", daemon=True).start()
        return done

    def drain(self, grace: float | None = 30.0) -> bool:
        """Health NOT_SERVING, refuse new calls (UNAVAILABLE), let running calls finish for up
        to `grace` seconds, then stop. True when every running call finished in time.

        With a state dir: stop taking calls at once (clients' channels move on to another
        address or replica), move every session to the state dir at a quiet point within
        `grace` while the calls already open go on, then stop. True when all were moved."""
        self.health.enter_graceful_shutdown()
        grace = 30.0 if grace is None else grace
        self.runtime.begin_drain(grace)
        if self.runtime.handoff is not None:
            # grpc's stop refuses new calls on every connection (a client retries them on
            # another address) and lets open ones run; the margin covers move_sessions'
            # own end of the grace.
            self._server.stop(grace + 5.0)
            finished = self.runtime.move_sessions()
            self._server.stop(0).wait()
            self._shutdown_runtime()
            return finished
        finished = self.runtime.wait_idle(grace)
        # A short grace lets replies already produced reach the wire; idle Pipeline streams
        # (no request running) are cancelled by it.
        self._server.stop(1.0).wait()
        self._shutdown_runtime()
        return finished

    def _shutdown_runtime(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.metrics is not None:
            self.metrics.stop()
        self.runtime.shutdown()


def check_port_free(address: str, flag: str = "--port") -> None:
    """OSError naming the port when something already listens on `address` ("host:port",
    "[::1]:port"); gRPC would only log a line of its own and fail. Port 0 is always free."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or int(port) == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return  # gRPC says what is wrong with the host
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # as gRPC binds: SO_REUSEADDR, so a port in TIME_WAIT is not "in use"
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    err = OSError(f"port {port} on {host or '*'} is already in use (another "
                                  f"gradserve server?); choose another with {flag}, or {flag} "
                                  "0 for a free one")
                    err.errno = errno.EADDRINUSE
                    raise err from None
                # another failure (no IPv6 here, ...): gRPC reports it if it matters


def _read(path: str | os.PathLike | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def create_server(address: str = "127.0.0.1:0", *, devices: str | Sequence[str] = ("cpu",),
                  session_ttl: float | None = DEFAULT_SESSION_TTL,
                  max_sessions: int | None = DEFAULT_MAX_SESSIONS,
                  max_session_bytes: int | None = None,
                  token_file: str | os.PathLike | None = None,
                  tls_cert: str | os.PathLike | None = None,
                  tls_key: str | os.PathLike | None = None,
                  tls_client_ca: str | os.PathLike | None = None,
                  metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
                  cpu_workers: int | None = None, rpc_threads: int = DEFAULT_RPC_THREADS,
                  max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                  state_dir: str | os.PathLike | None = None,
                  ) -> tuple[GradserveServer, int]:
    """A gradserve server bound to `address` (port 0 picks a free one), not yet started.

    session_ttl: seconds of idleness before a session is reclaimed (None/0: never).
    max_sessions / max_session_bytes: limits (None/0: none), RESOURCE_EXHAUSTED past them.
    token_file: bearer tokens that may call (see _auth); None lets everyone in as anonymous.
    tls_cert/tls_key: serve TLS; tls_client_ca also requires client certificates.
    metrics_port: serve Prometheus text on http://metrics_host:metrics_port/metrics.
    state_dir: a directory servers share; draining writes sessions there for another server
    to restore (docs/WIRE.md, "Draining").
    Returns the server and the port it is bound to.
    """
    devices = resolve_devices(devices)
    check_port_free(address)
    if metrics_port:
        host = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
        check_port_free(f"{host}:{metrics_port}", "--metrics-port")
    tokens = TokenTable.from_file(token_file) if token_file is not None else None
    runtime = Runtime(devices=devices, session_ttl=session_ttl, max_sessions=max_sessions,
                      max_session_bytes=max_session_bytes, tokens=tokens,
                      cpu_workers=cpu_workers, state_dir=state_dir)
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # a port in use is an error, not a silent second listener
    ]
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=rpc_threads,
                                                         thread_name_prefix="gradserve-rpc"),
                              options=options)
    grpc_server.add_generic_rpc_handlers((_service_handler(
        GradserveServicer(runtime, max_message_bytes)),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server)

    metrics = None
    if metrics_port is not None:
        from ._metrics import MetricsServer  # prometheus, only when a metrics port is set

        metrics = MetricsServer(metrics_host, metrics_port, runtime.metrics)
    server = GradserveServer(grpc_server, runtime, health_servicer, metrics)
    try:
        if tls_cert or tls_key or tls_client_ca:
            if not (tls_cert and tls_key):
                raise ValueError("TLS needs both tls_cert and tls_key")
            ca = _read(tls_client_ca)
            credentials = grpc.ssl_server_credentials(
                [(_read(tls_key), _read(tls_cert))], root_certificates=ca,
                require_client_auth=ca is not None)
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as e:
        port, error = 0, e
    else:
        error = None
    if not port:
        if metrics is not None:
            metrics.stop()
        runtime.shutdown()
        raise OSError(f"could not listen on {address}: {error or 'address in use?'}")
    server.port = port
    return server, port
