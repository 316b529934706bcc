"""Prometheus text metrics on `http://HOST:PORT/metrics` (the `--metrics-port` option).

A stdlib HTTP server in a daemon thread; it reads counters the runtime keeps anyway and
never takes a session lock (sizes are the ones cached after each call).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ._device_metrics import device_memory
from ._runtime import Runtime


def render(runtime: Runtime) -> str:
    """The metrics page for `runtime`, in Prometheus text exposition format."""
    sessions = runtime.sessions.sessions()
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    metric("gradserve_sessions", "gauge", "Live sessions.", [("", len(sessions))])
    metric("gradserve_tensors", "gauge", "Tensor ids bound in live sessions.",
           [("", sum(len(s.tensors) for s in sessions))])
    metric("gradserve_session_bytes", "gauge", "Bytes held by live sessions (tensors + grads).",
           [("", sum(s.nbytes for s in sessions))])
    counts = runtime.sessions.counts
    for event in ("created", "closed", "reaped"):
        metric(f"gradserve_sessions_{event}_total", "counter", f"Sessions {event}.",
               [("", counts[event])])
    metric("gradserve_errors_total", "counter", "Errors returned, by gradserve error kind.",
           [(f'{{kind="{kind}"}}', n) for kind, n in sorted(runtime.errors.items())])
    metric("gradserve_draining", "gauge", "1 while the server drains.",
           [("", int(runtime.draining))])
    for name, help_text, samples in device_memory(runtime):
        metric(name, "gauge", help_text, [(f'{{device="{d}"}}', n) for d, n in samples])
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves `render(runtime)` on GET /metrics."""

    def __init__(self, host: str, port: int, runtime: Runtime) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = render(runtime).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes are not session events
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="gradserve-metrics")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()
