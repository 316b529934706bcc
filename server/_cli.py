"""The `gradserve` command: `gradserve serve` runs a server, `gradserve demo` the seed example,
`gradserve health` asks a server's gRPC health service (for container health checks).

Every `serve` option can also come from an environment variable `GRADSERVE_<NAME>`
(`--port` <- GRADSERVE_PORT, `--max-session-bytes` <- GRADSERVE_MAX_SESSION_BYTES); a flag
on the command line wins. On start it prints one line, `gradserve listening on HOST:PORT
(devices: ...)`; session events go to stderr as JSON lines. SIGTERM (or Ctrl-C) drains:
health NOT_SERVING, new calls UNAVAILABLE, running calls finish, exit 0; with --state-dir the
sessions are written there instead, for another server to restore (a rolling update).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import signal
import sys
import threading
import time

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'0' (no limit), '1048576', '512M', '2GiB', '1.5g' -> bytes (K/M/G/T are powers of 1024)."""
    m = _SIZE.match(str(text))
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1073741824 or 1GiB)")
    number, unit, _ = m.groups()
    return int(float(number) * 1024 ** "_kmgt".index(unit.lower() or "_"))


def _optional_port(text: str) -> int | None:
    return None if str(text).strip() in ("", "off", "none") else int(text)


def _auto(parse):
    """`parse`, or None for 'auto' (the option's machine-derived default)."""
    def read(text):
        return None if str(text).strip().lower() == "auto" else parse(text)

    read.__name__ = getattr(parse, "__name__", "value")
    return read


def _env(name: str, default):
    return os.environ.get("GRADSERVE_" + name.upper().replace("-", "_"), default)


def _serve_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Serve gradserve sessions over gRPC. Each option can also be "
        "set with an environment variable GRADSERVE_<NAME>, e.g. GRADSERVE_PORT=0.")

    def opt(flag: str, default, type_, help_text: str) -> None:
        p.add_argument(flag, default=_env(flag[2:], default), type=type_,
                       help=f"{help_text} (env GRADSERVE_{flag[2:].upper().replace('-', '_')}"
                            f"; default: {default})")

    opt("--host", "127.0.0.1", str, "address to listen on")
    opt("--port", 50051, int, "port; 0 picks a free one")
    opt("--devices", "cpu", str,
        "cpu, cuda:0, cpu,cuda:0,cuda:1, or auto (every visible GPU, else cpu)")
    opt("--session-ttl", 900.0, float, "seconds of idleness before a session is reclaimed; "
        "0 = never")
    opt("--max-sessions", 1024, int, "most live sessions; 0 = no limit")
    opt("--max-server-bytes", "auto", _auto(parse_bytes), "most bytes all sessions together "
        "may keep alive, e.g. 48GiB; auto = 80%% of the machine's memory (or its cgroup "
        "limit); 0 = no limit")
    opt("--max-session-bytes", "auto", _auto(parse_bytes), "most bytes one session may keep "
        "alive (tensors, grads, saved tensors of recorded graphs, optimizer state), e.g. "
        "8GiB; auto = a quarter of --max-server-bytes; 0 = no limit")
    opt("--max-sessions-per-caller", "auto", _auto(int), "most live sessions of one caller "
        "(a token's name); auto = a quarter of --max-sessions with --token-file, else no "
        "limit (without tokens every caller is 'anonymous'); 0 = no limit")
    opt("--max-op-elements", "auto", _auto(int), "most elements one op may touch (its "
        "inputs, broadcasts at full size, or its outputs); auto = 2**31, fewer when "
        "--max-server-bytes holds fewer float32s; 0 = no limit")
    opt("--max-request-seconds", 300.0, float, "compute budget of one request: past it the "
        "request ends DEADLINE_EXCEEDED between two ops or two nodes of a backward (waiting "
        "on a client's hook does not count) and the session stays usable; 0 = no limit")
    opt("--callback-timeout", 60.0, float, "seconds a backward waits for the client to "
        "answer a hook or custom Function; then that backward fails naming the hook and the "
        "session stays usable; 0 = no limit")
    opt("--max-batch-ops", 100_000, int, "most ops in one request; 0 = no limit")
    opt("--max-graph-nodes", 200_000, int, "most nodes DescribeGraph describes; 0 = no "
        "limit")
    opt("--token-file", None, str, "file of bearer tokens that may call ('name:token' or "
        "'token' per line); none = open to all")
    opt("--tls-cert", None, str, "PEM certificate chain; serves TLS with --tls-key")
    opt("--tls-key", None, str, "PEM private key")
    opt("--tls-client-ca", None, str, "PEM CA bundle; clients must present a certificate")
    opt("--metrics-port", None, _optional_port, "serve Prometheus text on "
        "http://HOST:PORT/metrics")
    opt("--drain-grace", 30.0, float, "seconds running calls get to finish on SIGTERM (with "
        "--state-dir: sessions get to reach a quiet point); then the process exits, "
        "abandoning work still running")
    opt("--state-dir", None, str, "directory the replicas share: on SIGTERM each session is "
        "written there at a quiet point and restored by another server under the same id")
    opt("--cpu-workers", "auto", _auto(int), "compute slots for CPU sessions (sessions "
        "computing at once; a session whose last request had an op of 2**20 elements or more "
        "runs its next at nice +10); auto = one per usable core")
    opt("--log-level", "info", str, "debug, info, warning or error")
    p.add_argument("-V", "--version", action="version", version=f"gradserve {_version()}")
    return p


def _version() -> str:
    import gradserve  # the client package, only for --version

    return gradserve.__version__


class JsonLines(logging.Formatter):
    """One JSON object per line; records whose message is already JSON are kept as such."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        try:
            data = json.loads(message) if message.startswith("{") else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {"ts": round(record.created, 3), "message": message}
        data.setdefault("level", record.levelname.lower())
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("gradserve")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def _tune_process() -> None:
    """Settings for a process that is nothing but a server (not for an embedded one).

    Graphs are many small Python objects (a node, a tensor, its version counter per op) that
    live until backward: the cyclic collector's default pace (a pass every 700 allocations,
    each walking the live graph) cost ~20% of a remote op in measurements here, and the
    engine makes no reference cycles of its own to collect. Objects from startup are frozen
    out of every pass.

    glibc's malloc returns a large freed array's pages to the kernel and the next one
    faults them back in, one minor fault per 4 KiB: a conv net's step paid ~425 faults on
    the server (13% of its time). Keeping freed memory for reuse (what the environment
    variables MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ ask for; those win when set)
    took that to ~2. Freed memory is reused by later arrays rather than handed back."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    _keep_freed_memory()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _keep_freed_memory() -> None:
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes  # glibc tuning, only when the server starts

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    mallopt(_M_MMAP_THRESHOLD, 64 << 20)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def _session_bytes(args) -> int:
    if args.max_session_bytes is not None:
        return args.max_session_bytes
    # the CLI imports the server only for the command that runs it (--help stays fast)
    from gradserve.server._limits import Limits

    server = (Limits.default_server_bytes() if args.max_server_bytes is None
              else args.max_server_bytes)
    return Limits.default_session_bytes(server) or 0


def _per_caller(args) -> int:
    if args.max_sessions_per_caller is not None:
        return args.max_sessions_per_caller
    return max(1, args.max_sessions // 4) if args.token_file and args.max_sessions > 0 else 0


def serve(argv: list[str] | None = None, prog: str = "gradserve serve") -> int:
    """Run a server until SIGTERM/SIGINT, then drain and return 0."""
    parser = _serve_parser(prog)
    args = parser.parse_args(argv)
    # the server's modules (grpc, the engine) load only for `serve`, not for --help or health
    from gradserve.server._server import create_server
    from gradserve.server._sessions import log_event

    host = args.host
    address = f"[{host}]:{args.port}" if ":" in host else f"{host}:{args.port}"
    try:
        server, port = create_server(
            address, devices=args.devices, session_ttl=args.session_ttl,
            max_sessions=args.max_sessions, max_session_bytes=_session_bytes(args),
            token_file=args.token_file, tls_cert=args.tls_cert, tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca, metrics_port=args.metrics_port,
            metrics_host=host, cpu_workers=args.cpu_workers, state_dir=args.state_dir,
            max_server_bytes=args.max_server_bytes, max_op_elements=args.max_op_elements,
            max_request_seconds=args.max_request_seconds,
            callback_timeout=args.callback_timeout, max_batch_ops=args.max_batch_ops,
            max_graph_nodes=args.max_graph_nodes,
            max_sessions_per_caller=_per_caller(args))
    except Exception as e:  # a bad flag, a missing file, a port in use: say so, no traceback
        parser.exit(2, f"{prog}: error: {e}\n")
    _setup_logging(args.log_level)
    _tune_process()

    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    server.start()
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    devices = ", ".join(server.runtime.devices)
    print(f"gradserve listening on {shown} (devices: {devices})", flush=True)
    log_event("server.started", address=shown, devices=list(server.runtime.devices),
              tls=bool(args.tls_cert), auth="tokens" if args.token_file else "anonymous",
              metrics_port=server.metrics_port, instance=server.runtime.instance,
              state_dir=args.state_dir)
    while not stop.wait(3600):
        pass
    started = time.monotonic()
    log_event("server.signal", signal=signal.Signals(received[0]).name)
    finished = server.drain(args.drain_grace)
    busy = server.runtime.scheduler.busy()
    log_event("server.stopped", drained=finished, seconds=round(time.monotonic() - started, 3),
              **({"abandoned": busy} if busy else {}))
    if busy:  # work still computing after the grace: exit under it, as the grace promised
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def health(argv: list[str] | None = None) -> int:
    """Exit 0 when the server at --target answers SERVING, 1 otherwise (plaintext only)."""
    p = argparse.ArgumentParser(
        prog="gradserve health", description="Ask a gradserve server's gRPC health service; "
        "exit 0 when it is SERVING. For container health checks (deploy/Dockerfile).")
    p.add_argument("--target", default=f"127.0.0.1:{_env('port', 50051)}",
                   help="HOST:PORT (default: 127.0.0.1 and GRADSERVE_PORT, else 50051)")
    p.add_argument("--service", default="gradserve.v1.GradserveService",
                   help="service to ask about; '' for the server as a whole (default: "
                        "gradserve.v1.GradserveService)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default: 3)")
    args = p.parse_args(argv)
    # grpc's health stubs load only for the health subcommand
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as e:
            sys.stderr.write(f"gradserve health: {args.target}: {e.code().name}: "
                             f"{e.details()}\n")
            return 1
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def main(argv: list[str] | None = None) -> int:
    """`gradserve serve|demo|health [options]`, or `gradserve --version`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"serve": "run a gradserve server (see `gradserve serve --help`)",
                "demo": "run the seed example end to end; --train trains a CNN on digits "
                        "(see `gradserve demo --help`)",
                "health": "exit 0 when a server is SERVING (see `gradserve health --help`)"}
    if argv and argv[0] in ("-V", "--version"):
        print(f"gradserve {_version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        usage = "usage: gradserve [--version] {serve,demo,health} [options]\n\n" + "".join(
            f"  {name:<6} {text}\n" for name, text in commands.items())
        if argv and argv[0] in ("-h", "--help"):
            print(usage, end="")
            return 0
        sys.stderr.write(usage)
        if argv:
            sys.stderr.write(f"gradserve: error: unknown command {argv[0]!r}\n")
        return 2
    if argv[0] == "demo":
        from . import _demo  # the demo (and the SDK it drives) only for `gradserve demo`

        return _demo.main(argv[1:]) or 0
    if argv[0] == "health":
        return health(argv[1:])
    return serve(argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
