"""Prometheus metrics through `prometheus_client`, one registry per server (tests run several
servers in one process), served on `http://HOST:PORT/metrics` with `--metrics-port`.

What the calls record as they run (`Metrics.observe`, `Metrics.error`): latency histograms
of op batches, backward, grad and fetch work; errors by status code and kind; rejections by
the limit that refused them. What is read when scraped (the collectors of `collectors`):
sessions, tensors, bytes (in all and per device), each GPU's memory pool, session lifecycle
counts, draining, the server's instance id, and the library's process, platform and
garbage-collector collectors (RSS, CPU, open files). Scrapes never take a session lock:
sizes are the ones cached after each call.

To add metrics read at scrape time (a device's memory, ...), add a collector to
`collectors`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from ._device_metrics import device_memory

# Seconds; a CPU op batch of a small model takes ~0.1-1 ms, a large backward seconds.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)


class SessionCollector(Collector):
    """Sessions, tensors and bytes (per device), lifecycle counts, draining, instance id."""

    def __init__(self, runtime) -> None:
        self._rt = runtime

    def collect(self) -> Iterable:
        rt = self._rt
        sessions = rt.sessions.sessions()
        yield GaugeMetricFamily("gradserve_sessions", "Live sessions.", value=len(sessions))
        yield GaugeMetricFamily("gradserve_tensors", "Tensor ids bound in live sessions.",
                                value=sum(len(s.tensors) for s in sessions))
        yield GaugeMetricFamily("gradserve_session_bytes", "Bytes held by live sessions "
                                "(tensors + grads).", value=sum(s.nbytes for s in sessions))
        for event, n in rt.sessions.counts.items():
            yield CounterMetricFamily(f"gradserve_sessions_{event}", f"Sessions {event}.",
                                      value=n)
        yield GaugeMetricFamily("gradserve_draining", "1 while the server drains.",
                                value=int(rt.draining))
        yield GaugeMetricFamily("gradserve_compute_busy", "Requests holding a compute slot "
                                "now, or waiting on their client (a hook's answer).",
                                value=rt.scheduler.busy())
        yield InfoMetricFamily("gradserve_instance", "This server process.",
                               value={"instance": rt.instance})


class DeviceCollector(Collector):
    """Bytes sessions hold per device, and each GPU's memory pool (`_device_metrics`)."""

    def __init__(self, runtime) -> None:
        self._rt = runtime

    def collect(self) -> Iterable:
        for name, help_text, samples in device_memory(self._rt):
            gauge = GaugeMetricFamily(name, help_text, labels=["device"])
            for device, value in samples:
                gauge.add_metric([device], value)
            yield gauge


def collectors(runtime, registry: CollectorRegistry) -> None:
    """Register everything read at scrape time on `registry`."""
    registry.register(SessionCollector(runtime))
    registry.register(DeviceCollector(runtime))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class Metrics:
    """A server's metrics registry and what calls record into it."""

    def __init__(self, runtime) -> None:
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "gradserve_work_seconds", "Time a session's work took on its device worker, by "
            "kind: op_batch (the ops of one request), backward, grad, fetch, list.",
            ["kind"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._errors = Counter(
            "gradserve_errors", "Errors returned (as a call's status or a Pipeline reply), by "
            "gRPC status code and gradserve error kind.", ["code", "kind"],
            registry=self.registry)
        self._rejections = Counter(
            "gradserve_rejections", "Requests refused by a limit, by limit: max_sessions, "
            "max_session_bytes, max_server_bytes, max_sessions_per_caller, max_op_elements, "
            "max_batch_ops, max_batch_bytes, max_graph_nodes, inline_fetch, memory.", ["limit"],
            registry=self.registry)
        collectors(runtime, self.registry)
        self._observers = {kind: self._latency.labels(kind)
                           for kind in ("op_batch", "backward", "grad", "fetch", "list")}

    def observe(self, kind: str, seconds: float) -> None:
        """One piece of work of `kind` took `seconds`."""
        self._observers[kind].observe(seconds)

    def error(self, code: str, kind: str, limit: str | None = None) -> None:
        """An error went back to a caller; `limit` when a limit refused the request."""
        self._errors.labels(code, kind).inc()
        if limit is not None:
            self._rejections.labels(limit).inc()


class MetricsServer:
    """Serves a registry's text exposition on GET /metrics (a daemon thread)."""

    def __init__(self, host: str, port: int, metrics: Metrics) -> None:
        self._host, self._port, self._metrics = host, port, metrics
        self._httpd = None
        self._thread: threading.Thread | None = None
        self.port = port

    def start(self) -> None:
        self._httpd, self._thread = start_http_server(self._port, self._host,
                                                      self._metrics.registry)
        self.port = self._httpd.server_port

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
