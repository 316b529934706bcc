"""`create_server`: the gradserve service, gRPC health and reflection on one port.

    >>> server, port = create_server("127.0.0.1:0")
    >>> server.start()
    >>> ...                      # talk to 127.0.0.1:{port}
    >>> server.drain(grace=10)   # or server.stop(grace)

The returned object has a `grpc.Server`'s interface over a grpc.aio server that runs on an
event loop thread of its own (so tests and `gradserve serve` drive it from plain code): an
open call holds no thread, only memory. It also starts and stops the session reaper, the
compute slots and the optional metrics endpoint, and can drain: health goes NOT_SERVING,
new calls get UNAVAILABLE, running calls finish within the grace (work still computing after
it is abandoned), then it stops. With a state dir, draining moves the sessions there instead
(see `_handoff`).

Every handler reads its request as the bytes that arrived and parses them itself, after the
caller is identified from the call's metadata, so a message that does not parse is
INVALID_ARGUMENT from gradserve, never grpcio's INTERNAL "Exception deserializing request!",
and a caller without a valid token is refused before its message is read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import socket
import threading
from collections.abc import Sequence

import grpc
from google.protobuf import message_factory
from gradserve import engine
from gradserve.engine.seam import backend, canonical_device
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1.codec import MAX_MESSAGE_BYTES
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ._auth import TokenTable
from ._limits import Limits
from ._runtime import Runtime
from ._servicer import GradserveServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GradserveService"].full_name
DEFAULT_SESSION_TTL = 900.0
DEFAULT_MAX_SESSIONS = 1024
DEFAULT_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES
DEFAULT_MAX_REQUEST_SECONDS = 300.0
DEFAULT_CALLBACK_TIMEOUT = 60.0
DEFAULT_MAX_BATCH_OPS = 100_000
DEFAULT_MAX_GRAPH_NODES = 200_000


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


_METHOD_KINDS = {  # server streams -> grpc's handler factory (every request side streams)
    False: grpc.stream_unary_rpc_method_handler,
    True: grpc.stream_stream_rpc_method_handler,
}
# Methods whose replies are bytes already serialized (Fetch frames its chunks by hand:
# convert.fetch_frames); a message would copy each megabyte chunk twice more.
_RAW_RESPONSES = {"Fetch"}


def _service_handler(servicer: GradserveServicer) -> grpc.GenericRpcHandler:
    """The service's method handlers, made from the proto's service descriptor (what the
    generated add_..._to_server does, but every method reads its request bytes itself, after
    the caller is identified: see GradserveServicer.entry)."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GradserveService"].methods:
        # by descriptor, not by name in gradserve_pb2: DescribeGraph answers a well-known
        # google.protobuf.Struct
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = _METHOD_KINDS[method.server_streaming](
            servicer.entry(method, request), request_deserializer=None,
            response_serializer=None if method.name in _RAW_RESPONSES
            else response.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


class _Loop:
    """An asyncio event loop on a daemon thread, for an aio server driven from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="gradserve-aio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro, timeout: float | None = None):
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn, *args):
        """`fn(*args)` on the loop's thread (grpc.aio's objects belong to it)."""
        async def call():
            return fn(*args)

        return self.call(call())

    def spawn(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class Health:
    """The aio health servicer, driven from any thread: `set`, `enter_graceful_shutdown`."""

    def __init__(self, servicer: health_aio.HealthServicer, loop: _Loop) -> None:
        self.servicer, self._loop = servicer, loop

    def set(self, service: str, status) -> None:
        self._loop.call(self.servicer.set(service, status), 5)

    def enter_graceful_shutdown(self) -> None:
        if not self._loop.loop.is_closed() and self._loop.loop.is_running():
            self._loop.call(self.servicer.enter_graceful_shutdown(), 5)


class GradserveServer:
    """A grpc.aio server running gradserve on its own event loop thread, with the interface
    of a grpc.Server (start, stop, wait_for_termination, add_*_port) plus `drain`,
    `runtime`, `health`, `port`, `metrics_port`."""

    def __init__(self, server: grpc.aio.Server, loop: _Loop, runtime: Runtime,
                 health_servicer: Health, metrics=None) -> None:
        self._server = server
        self._loop = loop
        self.runtime = runtime
        self.health = health_servicer
        self.metrics = metrics
        self.port = 0
        self._stopped = threading.Event()
        self._terminated = threading.Event()

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics is None else self.metrics.port

    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        return self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self._loop.run(self._server.add_insecure_port, address)

    def add_secure_port(self, address: str, server_credentials) -> int:
        return self._loop.run(self._server.add_secure_port, address, server_credentials)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """As grpc.Server's: wait until the server stopped; True when `timeout` passed
        first."""
        return not self._terminated.wait(timeout)

    def start(self) -> None:
        """Start serving, the session reaper and the metrics endpoint."""
        self.runtime.start()
        self._loop.call(self._server.start())
        if self.metrics is not None:
            self.metrics.start()

    def stop(self, grace: float | None) -> threading.Event:
        """grpc.Server.stop: refuse new calls, cancel open ones after `grace` seconds (at once
        for None); then the reaper, compute slots and metrics endpoint stop too. Returns an
        Event set once all of it stopped."""
        if self._stopped.is_set():  # drained or stopped already
            return self._terminated
        self.health.enter_graceful_shutdown()
        done = self._loop.spawn(self._server.stop(grace))

        def finish() -> None:
            try:
                done.result()
            except Exception:  # pragma: no cover - the loop went away under it
                pass
            self._shutdown_runtime()

        threading.Thread(target=finish, name="gradserve-stop", daemon=True).start()
        return self._terminated

    def drain(self, grace: float | None = 30.0) -> bool:
        """Health NOT_SERVING, refuse new calls (UNAVAILABLE), let running calls finish for up
        to `grace` seconds, then stop. True when every running call finished in time. It
        returns within the grace (and a second) however busy the compute slots are: work
        still running is abandoned (`gradserve serve` then exits under it).

        With a state dir: stop taking calls at once (clients' channels move on to another
        address or replica), move every session to the state dir at a quiet point within
        `grace` while the calls already open go on, then stop. True when all were moved."""
        grace = 30.0 if grace is None else grace
        # refuse new calls before saying so: a caller that sees NOT_SERVING must not get a call in
        self.runtime.begin_drain(grace)
        self.health.enter_graceful_shutdown()
        if self.runtime.handoff is not None:
            # grpc's stop refuses new calls on every connection (a client retries them on
            # another address) and lets open ones run; the margin covers move_sessions'
            # own end of the grace.
            stopping = self._loop.spawn(self._server.stop(grace + 5.0))
            finished = self.runtime.move_sessions()
            self._loop.call(self._server.stop(0))
            stopping.result(5)
            self._shutdown_runtime()
            return finished
        finished = self.runtime.wait_idle(grace)
        # A short grace lets replies already produced reach the wire; idle Pipeline streams
        # (no request running) are cancelled by it.
        self._loop.call(self._server.stop(1.0))
        self._shutdown_runtime()
        return finished

    def _shutdown_runtime(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.metrics is not None:
            self.metrics.stop()
        self.runtime.shutdown()
        self._loop.close()
        self._terminated.set()


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
                  cpu_workers: int | None = None,
                  max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                  state_dir: str | os.PathLike | None = None,
                  max_server_bytes: int | None = None,
                  max_op_elements: int | None = None,
                  max_request_seconds: float | None = DEFAULT_MAX_REQUEST_SECONDS,
                  callback_timeout: float | None = DEFAULT_CALLBACK_TIMEOUT,
                  max_batch_ops: int | None = DEFAULT_MAX_BATCH_OPS,
                  max_graph_nodes: int | None = DEFAULT_MAX_GRAPH_NODES,
                  max_sessions_per_caller: int | None = None,
                  ) -> tuple[GradserveServer, int]:
    """A gradserve server bound to `address` (port 0 picks a free one), not yet started.

    session_ttl: seconds of idleness before a session is reclaimed (None/0: never).
    max_sessions / max_session_bytes / max_server_bytes / max_sessions_per_caller: limits,
    RESOURCE_EXHAUSTED past them (0: none; None: no limit for sessions per caller and
    session bytes, 80 % of the machine's memory for the server's bytes).
    max_op_elements: elements one op may touch (None: see Limits.default_op_elements).
    max_request_seconds: compute budget of one request, DEADLINE_EXCEEDED past it.
    callback_timeout: seconds a backward waits for the client's hook or Function.
    max_batch_ops / max_graph_nodes: ops per request, nodes DescribeGraph describes.
    token_file: bearer tokens that may call (see _auth); None lets everyone in as anonymous.
    tls_cert/tls_key: serve TLS; tls_client_ca also requires client certificates.
    metrics_port: serve Prometheus text on http://metrics_host:metrics_port/metrics.
    cpu_workers: compute slots for CPU sessions (None: one per usable core).
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
    if max_server_bytes is None:
        max_server_bytes = Limits.default_server_bytes()
    limits = Limits(
        max_session_bytes=max_session_bytes or None, max_server_bytes=max_server_bytes or None,
        max_op_elements=(Limits.default_op_elements(max_server_bytes)
                         if max_op_elements is None else max_op_elements or None),
        max_request_seconds=max_request_seconds or None,
        callback_timeout=callback_timeout or None, max_batch_ops=max_batch_ops or None,
        max_batch_bytes=max_message_bytes, max_graph_nodes=max_graph_nodes or None,
        max_sessions_per_caller=max_sessions_per_caller or None)
    runtime = Runtime(devices=devices, session_ttl=session_ttl, max_sessions=max_sessions,
                      tokens=tokens, cpu_workers=cpu_workers, state_dir=state_dir,
                      limits=limits)
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # a port in use is an error, not a silent second listener
    ]
    loop = _Loop()

    async def build():
        grpc_server = grpc.aio.server(options=options)
        grpc_server.add_generic_rpc_handlers((_service_handler(
            GradserveServicer(runtime, max_message_bytes)),))
        health_servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server)
        return grpc_server, health_servicer

    grpc_server, health_servicer = loop.call(build())

    metrics = None
    if metrics_port is not None:
        from ._metrics import MetricsServer  # prometheus, only when a metrics port is set

        metrics = MetricsServer(metrics_host, metrics_port, runtime.metrics)
    server = GradserveServer(grpc_server, loop, runtime, Health(health_servicer, loop),
                             metrics)
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
        loop.close()
        raise OSError(f"could not listen on {address}: {error or 'address in use?'}")
    server.port = port
    return server, port
