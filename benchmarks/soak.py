"""Soak: many clients training at once while clients are killed and garbage arrives, then one
long single-session loop; memory and errors read from the server's own /metrics.

    python benchmarks/soak.py [--clients 16] [--seconds 120] [--single-steps 10000]
                              [--out benchmarks/results/soak.md] [--json]

The server is a `gradserve serve` process on loopback. Phase 1: `--clients` threads, each
with its own session, train a small MLP (SGD; cross-entropy) for `--seconds`; every step the
client fetches the gradients and compares them, bit for bit, with the same step computed by
the in-process engine. Meanwhile one thread kills a random client every `--churn` seconds
(its channel closed mid-flight, its session abandoned to the TTL) and the client comes back
on a new connection and session, and another sends random bytes to random methods; hostile
clients are mixed in (issue 14): 2 whose hooks never answer (the server's --callback-timeout
of 2 s fails those backwards), 1 that runs ops at the work limit (--max-op-elements) and 16
raw streams that never send. Phase 2: one session runs `--single-steps` steps of the same
loop.

Reported: steps/s, p50/p99 step latency, client errors by kind, garbage answers by code,
server errors by status code (its metrics), server RSS over time (process collector).
Targets (issue 11): 0 wrong gradients, 0 INTERNAL, RSS growth < 10% from the end of warm-up
(the first fifth) to the end of phase 1, and < 5% over phase 2 after its first tenth.
`--json` prints the results as JSON (what tests/e2e/test_soak_smoke.py reads).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import gradserve as gs
import grpc
import numpy as np
from gradserve import engine
from prometheus_client.parser import text_string_to_metric_families

F, optim = gs.nn.functional, gs.optim
SERVICE = "gradserve.v1.GradserveService"
METHODS = ["CreateSession", "DescribeSession", "CloseSession", "RunOps", "Backward", "Grad",
           "Fetch", "Upload", "Release", "ListTensors", "Pipeline", "ListOps",
           "RestoreSession"]
STREAMING = {"Fetch": "unary_stream", "Upload": "stream_unary", "Pipeline": "stream_stream"}
HOOK_TIMEOUT, WORK_LIMIT = 2.0, 1 << 22  # the server's --callback-timeout, --max-op-elements


# -- the server -----------------------------------------------------------------------------------
class Server:
    """`python -m gradserve.server` with metrics on; its address and metrics URL."""

    def __init__(self, ttl: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradserve.server", "--port", "0", "--metrics-port", "0",
             "--session-ttl", str(ttl), "--callback-timeout", str(HOOK_TIMEOUT),
             "--max-op-elements", str(WORK_LIMIT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.address = self.proc.stdout.readline().split()[3]
        started: queue.Queue = queue.Queue()

        def read_log() -> None:  # keep reading, or the pipe fills and the server blocks
            for line in self.proc.stderr:
                if '"server.started"' in line:
                    started.put(json.loads(line))

        threading.Thread(target=read_log, daemon=True).start()
        self.metrics_url = f"http://127.0.0.1:{started.get(timeout=30)['metrics_port']}/metrics"

    def metrics(self) -> dict:
        """{(name, labels): value} from /metrics."""
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}

    def rss(self) -> float:
        return self.metrics()[("process_resident_memory_bytes", ())]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


# -- one client's training ------------------------------------------------------------------------
def _data(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=32)
    params = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in ((32, 16), (32,),
                                                                        (4, 32), (4,))]
    return x, y, params


def _forward(x, y, p):
    return F.cross_entropy(F.linear(F.relu(F.linear(x, p[0], p[1])), p[2], p[3]), y)


class Trainer:
    """A session training the MLP, and the in-process engine doing the same steps."""

    def __init__(self, address: str, seed: int) -> None:
        self.address = address
        x, y, params = _data(seed)
        self.ref_x, self.ref_y = engine.tensor(x), engine.tensor(y)
        self.ref = [engine.tensor(p, requires_grad=True) for p in params]
        self.ref_opt = optim.SGD(self.ref, lr=0.05)
        self.x_np, self.y_np = x, y
        self.client = None
        self.connect()

    def connect(self) -> None:
        """A new connection and session, starting from the reference's current weights; a
        killed one is dropped without closing its session (the server's TTL reclaims it)."""
        if self.client is not None:
            self.client._channel.close()
        self.client = gs.connect(self.address)
        s = self.s = self.client.session()
        self.x, self.y = s.tensor(self.x_np), s.tensor(self.y_np)
        self.params = [s.tensor(p.detach().numpy(), requires_grad=True) for p in self.ref]
        self.opt = optim.SGD(self.params, lr=0.05)

    def step(self) -> tuple[float, bool]:
        """One remote step checked against the engine: (seconds, gradients equal)."""
        start = time.perf_counter()
        self.opt.zero_grad()
        loss = _forward(self.x, self.y, self.params)
        loss.backward()
        grads = self.s.fetch(self.params, grad=True)
        value = loss.item()
        self.opt.step()
        elapsed = time.perf_counter() - start
        self.ref_opt.zero_grad()
        ref_loss = _forward(self.ref_x, self.ref_y, self.ref)
        ref_loss.backward()
        equal = value == ref_loss.item() and all(
            np.array_equal(g, r.grad.numpy()) for g, r in zip(grads, self.ref, strict=True))
        self.ref_opt.step()
        return elapsed, equal

    def kill(self) -> None:
        """Cut the session's stream mid-flight, as a dropped connection does: the client's
        next wait fails, and it comes back on a new connection and session."""
        pipe = self.s._pipe
        if pipe is not None:
            pipe._stream.cancel()


# -- phase 1 --------------------------------------------------------------------------------------
def many_clients(server: Server, clients: int, seconds: float, churn: float) -> dict:
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    wrong = [0]
    client_errors: collections.Counter = collections.Counter()
    killed: set[int] = set()
    trainers: list[Trainer | None] = [None] * clients

    def work(i: int) -> None:
        trainers[i] = Trainer(server.address, seed=i)
        while not stop.is_set():
            try:
                elapsed, equal = trainers[i].step()
            except gs.GradserveError as e:
                with lock:
                    expected = i in killed
                    killed.discard(i)
                    client_errors[f"{type(e).__name__} ({'killed' if expected else 'unexpected'})"
                                  ] += 1
                trainers[i].connect()
                continue
            with lock:
                latencies.append(elapsed)
                wrong[0] += not equal

    def churner() -> None:
        rng = random.Random(1)
        while not stop.wait(churn):
            i = rng.randrange(clients)
            if trainers[i] is not None:
                with lock:
                    killed.add(i)
                trainers[i].kill()

    garbage_codes: collections.Counter = collections.Counter()

    def garbage() -> None:
        rng = random.Random(2)
        with grpc.insecure_channel(server.address) as channel:
            while not stop.wait(0.002):
                method = rng.choice(METHODS)
                data = rng.randbytes(rng.randrange(1, 200))
                call = getattr(channel, STREAMING.get(method, "unary_unary"))(
                    f"/{SERVICE}/{method}")
                try:
                    if method in ("Upload", "Pipeline"):
                        out = call(iter([data]), timeout=10)
                        if method == "Pipeline":
                            list(out)
                    elif method == "Fetch":
                        list(call(data, timeout=10))
                    else:
                        call(data, timeout=10)
                    garbage_codes["OK"] += 1
                except grpc.RpcError as e:
                    garbage_codes[e.code().name] += 1

    hostile = {"hung_hook_errors": collections.Counter(), "work_limit_ops": 0}
    release = threading.Event()

    def hung_hook() -> None:  # a hook that never answers, until the soak ends
        try:
            with gs.connect(server.address) as client:
                x = client.session().tensor(np.ones(8, np.float32), requires_grad=True)
                x.register_hook(lambda g: (release.wait(), g)[1])
                (x * 2).sum().backward()
        except gs.GradserveError as e:  # the server gave up on it: expected
            hostile["hung_hook_errors"][type(e).__name__] += 1

    def at_work_limit() -> None:
        side = int(WORK_LIMIT ** 0.5)
        with gs.connect(server.address) as client:
            one = client.session().tensor(np.ones((1, 1), np.float32))
            while not stop.is_set():
                one.expand(side, side).sum().item()
                hostile["work_limit_ops"] += 1

    def never():
        release.wait()
        yield b""

    idle_channel = grpc.insecure_channel(server.address)
    idle = [idle_channel.stream_stream(f"/{SERVICE}/Pipeline")(never()) for _ in range(16)]

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    threads += [threading.Thread(target=churner, daemon=True),
                threading.Thread(target=garbage, daemon=True),
                threading.Thread(target=at_work_limit, daemon=True)]
    threads += [threading.Thread(target=hung_hook, daemon=True) for _ in range(2)]
    start = time.monotonic()
    rss = [(0.0, server.rss())]
    for t in threads:
        t.start()
    while time.monotonic() - start < seconds:
        time.sleep(min(2.0, seconds / 20))
        rss.append((time.monotonic() - start, server.rss()))
    stop.set()
    release.set()
    for t in threads:
        t.join(timeout=60)
    for call in idle:
        call.cancel()
    idle_channel.close()
    total = time.monotonic() - start
    metrics = server.metrics()
    warm = next(v for t, v in rss if t >= seconds / 5)
    lat = sorted(latencies)
    return {
        "clients": clients, "seconds": round(total, 1), "steps": len(lat),
        "steps_per_s": round(len(lat) / total, 1),
        "p50_ms": round(1000 * statistics.median(lat), 2) if lat else None,
        "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
        "wrong_gradients": wrong[0], "client_errors": dict(client_errors),
        "garbage_requests": sum(garbage_codes.values()), "garbage_codes": dict(garbage_codes),
        "hung_hook_errors": dict(hostile["hung_hook_errors"]),
        "work_limit_ops": hostile["work_limit_ops"],
        "server_errors_by_code": _by_label(metrics, "gradserve_errors_total", "code"),
        "sessions_reaped": metrics.get(("gradserve_sessions_reaped_total", ()), 0),
        "rss_start_mb": round(rss[0][1] / 2**20, 1), "rss_warm_mb": round(warm / 2**20, 1),
        "rss_end_mb": round(rss[-1][1] / 2**20, 1),
        "rss_growth_after_warmup": round(rss[-1][1] / warm - 1, 4),
        "rss_series_mb": [(round(t, 1), round(v / 2**20, 1)) for t, v in rss],
    }


def _by_label(metrics: dict, name: str, label: str) -> dict:
    out: collections.Counter = collections.Counter()
    for (n, labels), value in metrics.items():
        if n == name:
            out[dict(labels)[label]] += int(value)
    return dict(out)


# -- phase 2 --------------------------------------------------------------------------------------
def single_session(server: Server, steps: int) -> dict:
    trainer = Trainer(server.address, seed=99)
    wrong, warm_rss, start = 0, None, time.monotonic()
    for n in range(steps):
        if n == steps // 10:
            warm_rss = server.rss()
        wrong += not trainer.step()[1]
    end_rss = server.rss()
    trainer.client.close()
    return {"steps": steps, "seconds": round(time.monotonic() - start, 1),
            "wrong_gradients": wrong, "rss_warm_mb": round(warm_rss / 2**20, 1),
            "rss_end_mb": round(end_rss / 2**20, 1),
            "rss_growth_after_warmup": round(end_rss / warm_rss - 1, 4)}


# -- report ---------------------------------------------------------------------------------------
def report(args, one: dict, two: dict) -> str:
    internal = one["server_errors_by_code"].get("INTERNAL", 0) + one["garbage_codes"].get(
        "INTERNAL", 0)
    checks = [
        ("wrong gradients", one["wrong_gradients"] + two["wrong_gradients"], "0",
         one["wrong_gradients"] + two["wrong_gradients"] == 0),
        ("INTERNAL answers", internal, "0", internal == 0),
        ("RSS growth after warm-up, many clients",
         f"{100 * one['rss_growth_after_warmup']:+.1f}%", "< 10%",
         one["rss_growth_after_warmup"] < 0.10),
        (f"RSS growth, {two['steps']:,}-step single session",
         f"{100 * two['rss_growth_after_warmup']:+.1f}%", "< 5%",
         two["rss_growth_after_warmup"] < 0.05),
    ]
    lines = [
        "# Soak", "",
        f"`python benchmarks/soak.py --clients {args.clients} --seconds {args.seconds:g} "
        f"--single-steps {args.single_steps} --churn {args.churn:g}`", "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; shared with other jobs while it ran, so throughput and "
        "latency are of this run only. Server and clients on one loopback.", "",
        "| target | measured | wanted | met |", "| --- | --- | --- | --- |",
        *[f"| {name} | {got} | {want} | {'yes' if ok else 'NO'} |"
          for name, got, want, ok in checks],
        "", "## Many clients, churn and garbage", "",
        f"{one['clients']} clients for {one['seconds']} s: {one['steps']:,} steps "
        f"({one['steps_per_s']} steps/s), step latency p50 {one['p50_ms']} ms, p99 "
        f"{one['p99_ms']} ms (a step: zero_grad, forward, backward, fetch 4 grads, "
        "loss.item(), SGD step; two waits).", "",
        f"- client errors: {one['client_errors'] or 'none'} (a killed client's in-flight call "
        "fails; it reconnects)",
        f"- garbage: {one['garbage_requests']:,} random-byte requests to random methods, "
        f"answered {one['garbage_codes']}",
        f"- server errors by status code (its metrics): {one['server_errors_by_code']}",
        f"- sessions reclaimed by the TTL (abandoned by killed clients): "
        f"{int(one['sessions_reaped'])}",
        f"- server RSS: {one['rss_start_mb']} MB at start, {one['rss_warm_mb']} MB after "
        f"warm-up, {one['rss_end_mb']} MB at the end", "",
        "RSS over time (s, MB): " + ", ".join(f"{t:g}: {v:g}" for t, v in
                                               one["rss_series_mb"]),
        "", "## One session, many steps", "",
        f"{two['steps']:,} steps in {two['seconds']} s; RSS {two['rss_warm_mb']} MB after "
        f"the first tenth, {two['rss_end_mb']} MB at the end.", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--churn", type=float, default=0.5, help="seconds between client kills")
    p.add_argument("--single-steps", type=int, default=10_000)
    p.add_argument("--ttl", type=float, default=5.0, help="the server's --session-ttl")
    p.add_argument("--out", help="write the markdown report here")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()
    server = Server(args.ttl)
    try:
        one = many_clients(server, args.clients, args.seconds, args.churn)
        two = single_session(server, args.single_steps)
        alive = server.proc.poll() is None
    finally:
        server.stop()
    if args.json:
        print(json.dumps({"many_clients": one, "single_session": two, "server_alive": alive}))
    else:
        text = report(args, one, two)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
