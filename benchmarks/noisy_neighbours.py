"""Noisy neighbours: one server shared by well-behaved and hostile callers (issue 14).

    python benchmarks/noisy_neighbours.py [--sessions 4000] [--streams 2000] [--steps 200]
                                          [--out benchmarks/results/noisy_neighbours.md]
    python benchmarks/noisy_neighbours.py --short      # a quick form (CI-sized numbers)

Each part starts its own `gradserve serve` process on loopback.

1. Capacity: `--sessions` SDK sessions (each has run one op, so each holds its Pipeline
   stream open) spread over `--connections` connections, plus `--streams` raw Pipeline
   streams that never send. Then Health/Check's latency (p50/p99 of 200 checks) and a new
   client's connect + session + first step (p50/p99 of 20, from a process of its own, as a
   new client is), and the server's RSS per idle session. Targets: Health p99 < 50 ms,
   new session + first step < 250 ms, RSS per idle session < 64 KB.
2. Noisy neighbours: a client trains the tiny MLP (batch 32, 64-64-10, SGD) for `--steps`
   steps alone and `--steps` steps while 2 clients hold hooks they never answer, 1 runs ops
   at the work limit (--max-op-elements), 64 raw streams idle and 1 sends garbage to random
   methods (~100 messages a second); the neighbours run in a process of their own, started
   for each of `--phases` noisy phases that alternate with solo ones (so a shared machine's
   drifting load weighs on both sides alike). Every
   step's loss is compared with the in-process engine's. Targets: median step <= 1.5x and
   p99 <= 3x solo; 0 wrong results; 0 INTERNAL (the server's metrics).
3. Bytes: a sin chain (x = x.sin(), 4 MiB each) under --max-session-bytes 256MiB and
   --max-server-bytes 512MiB until it is refused; the server's RSS through it, and
   DescribeSession's bytes against what the chain holds. Targets: refused at the limit; RSS
   below the server cap + 15 %; bytes within 5 %.
"""

from __future__ import annotations

import argparse
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
from grpc_health.v1 import health_pb2, health_pb2_grpc

F, optim = gs.nn.functional, gs.optim
METHODS = ["CreateSession", "DescribeSession", "RunOps", "Backward", "Fetch", "Upload",
           "Pipeline", "ListOps"]
STREAMING = {"Fetch": "unary_stream", "Upload": "stream_unary", "Pipeline": "stream_stream"}
MiB = 1 << 20


class Server:
    """A `gradserve serve` process on a free port with metrics on."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradserve.server", "--port", "0", "--metrics-port", "0",
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().split()[3]
        started: queue.Queue = queue.Queue()

        def read_log() -> None:  # keep reading, or the pipe fills and the server blocks
            for line in self.proc.stderr:
                if '"server.started"' in line:
                    started.put(json.loads(line))

        threading.Thread(target=read_log, daemon=True).start()
        self.metrics_url = f"http://127.0.0.1:{started.get(timeout=30)['metrics_port']}/metrics"

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def internal_errors(self) -> float:
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("gradserve_errors_total") and 'code="INTERNAL"' in line)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stdout.close()


def _never():
    threading.Event().wait(24 * 3600)
    yield b""  # pragma: no cover


def _pcts(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"p50": statistics.median(s), "p99": s[min(len(s) - 1, int(len(s) * 0.99))],
            "n": len(s)}


# -- 1. capacity ------------------------------------------------------------------------------
def capacity(args) -> dict:
    server = Server("--max-sessions", str(args.sessions + 96), "--session-ttl", "0")
    try:
        time.sleep(0.5)
        base = server.rss()
        clients = [gs.connect(server.address) for _ in range(args.connections)]
        sessions = []
        started = time.perf_counter()
        for i in range(args.sessions):
            s = clients[i % len(clients)].session()
            s.tensor(np.ones(1, np.float32)).item()  # opens its Pipeline stream
            sessions.append(s)
        open_seconds = time.perf_counter() - started
        with_sessions = server.rss()
        channels = [grpc.insecure_channel(server.address) for _ in range(args.connections)]
        streams = [channels[i % len(channels)].stream_stream(
            "/gradserve.v1.GradserveService/Pipeline")(_never()) for i in range(args.streams)]
        time.sleep(1.0)
        with grpc.insecure_channel(server.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
            health = []
            for _ in range(200):
                t = time.perf_counter()
                stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
                health.append(time.perf_counter() - t)
        # a new client is a process of its own: this one holds 4000 sessions and a thread
        # per raw stream, and its own cyclic collector once paused it for 0.7 s mid-sample
        out = subprocess.run([sys.executable, __file__, "--first-steps", server.address],
                             capture_output=True, text=True, timeout=600, check=True).stdout
        first = json.loads(out.strip().splitlines()[-1])
        result = {"sessions": args.sessions, "streams": args.streams,
                  "open_sessions_s": open_seconds, "health": _pcts(health),
                  "new_session_first_step": _pcts(first),
                  "rss_base": base, "rss_with_sessions": with_sessions,
                  "rss_with_streams": server.rss(),
                  "rss_per_session": (with_sessions - base) / max(1, args.sessions)}
        for stream in streams:
            stream.cancel()
        return result
    finally:
        server.stop()


def first_steps(address: str, n: int = 20) -> int:
    """A new client's connect + session + first step, `n` times, after one untimed (this
    process's imports and first-use set-up are not the server's): print the seconds as JSON."""
    times = []
    for i in range(n + 1):
        t = time.perf_counter()
        with gs.connect(address) as client:
            s = client.session()
            w = s.tensor(np.ones((4, 4), np.float32), requires_grad=True)
            (w * 2).sum().backward()
            w.grad.sum().item()
            if i:  # as before: the client's close (its stream's end) is not the step's
                times.append(time.perf_counter() - t)
    print(json.dumps(times), flush=True)
    return 0


# -- 2. noisy neighbours ----------------------------------------------------------------------
def _mlp_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=32)
    params = [rng.standard_normal(s).astype(np.float32) * 0.1
              for s in ((64, 64), (64,), (10, 64), (10,))]
    return x, y, params


def _forward(x, y, p):
    return F.cross_entropy(F.linear(F.relu(F.linear(x, p[0], p[1])), p[2], p[3]), y)


class Trainer:
    """The well-behaved client, and the in-process engine doing the same steps."""

    def __init__(self, address: str) -> None:
        x, y, params = _mlp_data()
        self.client = gs.connect(address)
        s = self.s = self.client.session()
        self.x, self.y = s.tensor(x), s.tensor(y)
        self.params = [s.tensor(p, requires_grad=True) for p in params]
        self.opt = optim.SGD(self.params, lr=0.05)
        self.rx, self.ry = engine.tensor(x), engine.tensor(y)
        self.ref = [engine.tensor(p, requires_grad=True) for p in params]
        self.ref_opt = optim.SGD(self.ref, lr=0.05)

    def steps(self, n: int) -> tuple[list[float], int]:
        times, wrong = [], 0
        for _ in range(n):
            t = time.perf_counter()
            self.opt.zero_grad()
            loss = _forward(self.x, self.y, self.params)
            loss.backward()
            self.opt.step()
            value = loss.item()
            times.append(time.perf_counter() - t)
            self.ref_opt.zero_grad()
            ref = _forward(self.rx, self.ry, self.ref)
            ref.backward()
            self.ref_opt.step()
            wrong += value != ref.item()
        return times, wrong


def _hung_hook(address: str, release: threading.Event, errors: list) -> None:
    """A client whose hook never answers (until the benchmark ends)."""
    try:
        with gs.connect(address) as client:
            s = client.session()
            x = s.tensor(np.ones(8, np.float32), requires_grad=True)
            x.register_hook(lambda g: (release.wait(), g)[1])
            (x * 2).sum().backward()
    except Exception as e:  # the server's --callback-timeout ends it: expected
        errors.append(type(e).__name__)


def _at_work_limit(address: str, elements: int, stop: threading.Event, count: list) -> None:
    side = int(elements ** 0.5)
    with gs.connect(address) as client:
        s = client.session()
        one = s.tensor(np.ones((1, 1), np.float32))
        while not stop.is_set():
            one.expand(side, side).sum().item()
            count[0] += 1


def _garbage(address: str, stop: threading.Event, codes: dict) -> None:
    rng = random.Random(0)
    with grpc.insecure_channel(address) as channel:
        while not stop.is_set():
            method = rng.choice(METHODS)
            kind = STREAMING.get(method, "unary_unary")
            call = getattr(channel, kind)(f"/gradserve.v1.GradserveService/{method}")
            junk = rng.randbytes(rng.randint(1, 2048))
            try:
                if kind == "unary_unary":
                    call(junk, timeout=5)
                elif kind == "unary_stream":
                    list(call(junk, timeout=5))
                else:
                    reply = call(iter([junk]), timeout=5)
                    if kind == "stream_stream":
                        list(reply)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            codes[code] = codes.get(code, 0) + 1
            time.sleep(0.01)  # ~100 a second: a hostile client, not a load test


def noise(address: str, limit: int) -> int:
    """The neighbours, in a process of their own (so the measured client shares no GIL with
    them): run until stdin closes, then print what they did as JSON."""
    stop, release = threading.Event(), threading.Event()
    hook_errors, work, codes = [], [0], {}
    threads = [threading.Thread(target=_hung_hook, args=(address, release, hook_errors),
                                daemon=True) for _ in range(2)]
    threads.append(threading.Thread(target=_at_work_limit, args=(address, limit, stop, work),
                                    daemon=True))
    threads.append(threading.Thread(target=_garbage, args=(address, stop, codes), daemon=True))
    for t in threads:
        t.start()
    channels = [grpc.insecure_channel(address) for _ in range(4)]
    streams = [channels[i % 4].stream_stream("/gradserve.v1.GradserveService/Pipeline")(
        _never()) for i in range(64)]
    print("ready", flush=True)
    sys.stdin.read()
    stop.set()
    release.set()
    for stream in streams:
        stream.cancel()
    print(json.dumps({"work_limit_ops": work[0], "garbage_codes": codes,
                      "hook_errors": hook_errors}), flush=True)
    os._exit(0)


def neighbours(args) -> dict:
    """`--steps` steps alone and `--steps` among neighbours, in `--phases` alternating
    phases (alone, among them, alone, ...): each noisy phase starts a neighbours' process and
    ends it, so the solo phases are alone, and a machine whose load drifts (other processes)
    weighs on both sides alike."""
    limit = 1 << 22
    server = Server("--max-op-elements", str(limit), "--callback-timeout", "600")
    solo, noisy, wrong = [], [], 0
    did = {"work_limit_ops": 0, "garbage_codes": {}, "hook_errors": []}
    per_phase = max(1, args.steps // args.phases)
    try:
        trainer = Trainer(server.address)
        trainer.steps(10)  # warm up
        for _ in range(args.phases):
            times, bad = trainer.steps(per_phase)
            solo += times
            wrong += bad
            proc = subprocess.Popen([sys.executable, __file__, "--noise", server.address,
                                     "--limit", str(limit)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(1.0)
            times, bad = trainer.steps(per_phase)
            noisy += times
            wrong += bad
            out, _ = proc.communicate("", timeout=60)
            phase = json.loads(out.strip().splitlines()[-1])
            did["work_limit_ops"] += phase["work_limit_ops"]
            did["hook_errors"] += phase["hook_errors"]
            for code, n in phase["garbage_codes"].items():
                did["garbage_codes"][code] = did["garbage_codes"].get(code, 0) + n
        internal = server.internal_errors()
        s, n = _pcts(solo), _pcts(noisy)
        return {"solo": s, "noisy": n, "median_ratio": n["p50"] / s["p50"],
                "p99_ratio": n["p99"] / s["p99"], "wrong": wrong, "internal": internal,
                "phases": args.phases, "load": os.getloadavg()[0], **did}
    finally:
        server.stop()


# -- 3. bytes ---------------------------------------------------------------------------------
def byte_limits(args) -> dict:
    server = Server("--max-session-bytes", "256MiB", "--max-server-bytes", "512MiB")
    peak, steps, refused, reported, expected = 0, 0, None, 0, 0
    try:
        with gs.connect(server.address) as client:
            s = client.session()
            x = s.tensor(np.ones(MiB, np.float32), requires_grad=True)
            try:
                for steps in range(1, 1000):  # noqa: B007  (the count is the result)
                    x = x.sin()
                    x.sum().item()  # each step runs: a refusal names its own op
                    peak = max(peak, server.rss())
                    reported = s.info()["bytes"]
                    expected = (steps + 1) * 4 * MiB + 4 * steps  # the chain, and each sum
            except gs.GradserveError as e:
                refused = f"{type(e).__name__}: {str(e)[:160]}"
        return {"steps": steps, "refused": refused, "peak_rss": peak,
                "cap_plus_15": int(512 * MiB * 1.15), "reported_bytes": reported,
                "chain_bytes": expected}
    finally:
        server.stop()


def report(args, cap: dict | None, noisy: dict | None, byte: dict | None) -> str:
    head = ["# Noisy neighbours (issue 14)", "",
            f"`python benchmarks/noisy_neighbours.py {' '.join(sys.argv[1:])}` on "
            f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}.", ""]
    return "\n".join(head + (_capacity_lines(cap) if cap else [])
                     + (_neighbour_lines(noisy) if noisy else [])
                     + (_byte_lines(byte) if byte else []))


MS = 1000


def _capacity_lines(cap: dict) -> list[str]:
    h, f, ms = cap["health"], cap["new_session_first_step"], MS
    return [
        "## Capacity", "",
        f"{cap['sessions']} open SDK sessions + {cap['streams']} raw streams that never send.",
        "", "| measure | result | target |", "| --- | --- | --- |",
        f"| Health/Check p50 / p99 | {h['p50'] * ms:.1f} / {h['p99'] * ms:.1f} ms | p99 < 50 ms |",
        f"| new client: session + first step p50 / p99 | {f['p50'] * ms:.0f} / "
        f"{f['p99'] * ms:.0f} ms | < 250 ms |",
        f"| server RSS per idle SDK session | {cap['rss_per_session'] / 1024:.1f} KB | < 64 KB |",
        f"| RSS: base / with sessions / with streams | {cap['rss_base'] / MiB:.0f} / "
        f"{cap['rss_with_sessions'] / MiB:.0f} / {cap['rss_with_streams'] / MiB:.0f} MiB | |",
        ""]


def _neighbour_lines(noisy: dict) -> list[str]:
    ms = MS
    return [
        "## Noisy neighbours", "",
        "Tiny MLP step (batch 32, 64-64-10) alone and with 2 hung-hook clients, 1 at the work "
        f"limit, 64 idle streams and 1 garbage sender, in {noisy['phases']} alternating phases "
        f"each (1-minute load average at the end: {noisy['load']:.2f}).", "",
        "| | p50 | p99 |", "| --- | --- | --- |",
        f"| alone | {noisy['solo']['p50'] * ms:.2f} ms | {noisy['solo']['p99'] * ms:.2f} ms |",
        f"| with neighbours | {noisy['noisy']['p50'] * ms:.2f} ms | "
        f"{noisy['noisy']['p99'] * ms:.2f} ms |",
        f"| ratio (target <= 1.5 / <= 3) | {noisy['median_ratio']:.2f} | "
        f"{noisy['p99_ratio']:.2f} |", "",
        f"Wrong results: {noisy['wrong']}; INTERNAL: {noisy['internal']:.0f}; ops at the work "
        f"limit meanwhile: {noisy['work_limit_ops']}; garbage answered: "
        f"{noisy['garbage_codes']}.", ""]


def _byte_lines(byte: dict) -> list[str]:
    return [
        "## Bytes (sin chain)", "",
        f"Refused after {byte['steps']} steps: {byte['refused']}. Peak RSS "
        f"{byte['peak_rss'] / MiB:.0f} MiB (cap + 15 %: {byte['cap_plus_15'] / MiB:.0f} MiB). "
        f"DescribeSession bytes {byte['reported_bytes']} for a chain holding "
        f"{byte['chain_bytes']}.", ""]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=4000)
    p.add_argument("--streams", type=int, default=2000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--phases", type=int, default=5,
                   help="alternating alone / among-neighbours phases of part 2")
    p.add_argument("--short", action="store_true", help="200 sessions, 200 streams, 50 steps")
    p.add_argument("--parts", type=lambda t: t.split(","),
                   default=["capacity", "neighbours", "bytes"],
                   help="which parts to run: capacity,neighbours,bytes")
    p.add_argument("--out", help="write the markdown report here")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--noise", metavar="ADDRESS", help=argparse.SUPPRESS)  # part 2's neighbours
    p.add_argument("--first-steps", metavar="ADDRESS", help=argparse.SUPPRESS)  # part 1's client
    p.add_argument("--limit", type=int, default=1 << 22, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.noise:
        return noise(args.noise, args.limit)
    if args.first_steps:
        return first_steps(args.first_steps)
    if args.short:
        args.sessions, args.streams, args.steps = 200, 200, 50
    parts = {"capacity": capacity, "neighbours": neighbours, "bytes": byte_limits}
    results = {name: parts[name](args) if name in args.parts else None for name in parts}
    text = report(args, *results.values())
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(json.dumps(results, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
