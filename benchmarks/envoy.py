"""What Envoy in front of the replicas costs: sessions created and training steps, through
Envoy (deploy/envoy/envoy.yaml) against straight to a replica, on loopback.

    python benchmarks/envoy.py [--rounds 8] [--out benchmarks/results/envoy.md]

Starts three `gradserve serve` processes and Envoy the way tests/deploy does (the same
code: its conftest's Replica and Envoy, loaded by path), then alternates direct and proxied
blocks of each measurement inside this one run, so load from other processes on a shared
machine hits both sides alike; the table reports medians over the rounds and their ratio.
1. Sessions: create a session, run one op and wait for it (which opens its Pipeline stream),
   close it.
2. Small step: least squares on 16x4, one round trip per step (latency-bound).
3. MLP step: batch 64, 784-512-512-10, float32, SGD (compute-bound).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import platform
import statistics
import tempfile
import time

import gradserve as gs
import gradserve.nn.functional as F
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES = (784, 512, 512, 10)


def _cluster_helpers():
    spec = importlib.util.spec_from_file_location(
        "gradserve_deploy_fixtures", ROOT / "tests" / "deploy" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sessions_per_second(client, count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        with client.session() as s:
            s.ones(1).item()
    return count / (time.perf_counter() - t0)


class SmallStep:
    def __init__(self, s) -> None:
        rng = np.random.default_rng(0)
        self.x = s.tensor(rng.standard_normal((16, 4)).astype(np.float32))
        self.y = s.tensor(rng.standard_normal((16, 1)).astype(np.float32))
        self.w = s.zeros(4, 1, requires_grad=True)

    def __call__(self) -> None:
        loss = ((self.x @ self.w - self.y) ** 2).mean()
        loss.backward()
        with gs.no_grad():
            self.w -= 0.05 * self.w.grad
        self.w.grad = None


class MlpStep:
    def __init__(self, s) -> None:
        rng = np.random.default_rng(1)
        self.params = []
        for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
            bound = 1 / np.sqrt(fan_in)
            for shape in ((fan_out, fan_in), (fan_out,)):
                self.params.append(s.tensor(rng.uniform(-bound, bound, shape)
                                            .astype(np.float32), requires_grad=True))
        self.x = s.tensor(rng.standard_normal((64, SIZES[0])).astype(np.float32))
        self.y = s.tensor(rng.integers(0, SIZES[-1], 64))

    def __call__(self) -> None:
        h = self.x
        for i in range(0, len(self.params), 2):
            h = F.linear(h, self.params[i], self.params[i + 1])
            if i + 2 < len(self.params):
                h = h.relu()
        loss = F.cross_entropy(h, self.y)
        loss.backward()
        with gs.no_grad():
            for p in self.params:
                p.sub_(p.grad * 0.01)
                p.grad = None
        loss.item()


def steps_per_second(step, count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        step()
    return count / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", help="write the markdown table here too")
    args = parser.parse_args()

    cluster = _cluster_helpers()
    replicas = [cluster.Replica() for _ in range(3)]
    proxy = None
    try:
        with tempfile.TemporaryDirectory() as workdir:
            proxy = cluster.Envoy(ROOT / "deploy" / "envoy" / "envoy.yaml",
                                  pathlib.Path(workdir), [r.address for r in replicas])
            results = measure(replicas[0].address, proxy.address, args.rounds)
            proxy.stop()
    finally:
        for r in replicas:
            r.kill()

    lines = [
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}, "
        f"{len(os.sched_getaffinity(0))} CPUs shared with other work; "
        "Envoy 1.40 with --concurrency 1, three replicas, one client thread",
        "",
        "| measurement (median of rounds) | direct to a replica | through Envoy | Envoy / direct |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, unit, (direct, proxied) in results:
        lines.append(f"| {name} | {direct:.1f} {unit} | {proxied:.1f} {unit} "
                     f"| **{proxied / direct:.2f}x** |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# benchmarks/envoy.py\n\n")
            f.write(f"Command: `python benchmarks/envoy.py --rounds {args.rounds} "
                    f"--out {args.out}`\n\n{text}\n")


def measure(direct_address: str, proxy_address: str, rounds: int) -> list:
    clients = {"direct": gs.connect(direct_address), "envoy": gs.connect(proxy_address)}
    samples = {key: {side: [] for side in clients} for key in ("sessions", "small", "mlp")}
    try:
        sessions = {side: c.session() for side, c in clients.items()}
        small = {side: SmallStep(s) for side, s in sessions.items()}
        mlp = {side: MlpStep(s) for side, s in sessions.items()}
        for side in clients:  # warm both paths: connections, thread pools, caches
            sessions_per_second(clients[side], 5)
            steps_per_second(small[side], 10)
            steps_per_second(mlp[side], 3)
        for i in range(rounds):
            order = list(clients) if i % 2 == 0 else list(clients)[::-1]
            for side in order:
                samples["sessions"][side].append(sessions_per_second(clients[side], 30))
                samples["small"][side].append(steps_per_second(small[side], 60))
                samples["mlp"][side].append(steps_per_second(mlp[side], 15))
        for s in sessions.values():
            s.close()
    finally:
        for c in clients.values():
            c.close()

    def pair(key):
        return tuple(statistics.median(samples[key][side]) for side in clients)

    return [("sessions created (create, 1 op, close)", "/s", pair("sessions")),
            ("small step (least squares 16x4, 1 round trip)", "steps/s", pair("small")),
            ("MLP step 64x784-512-512-10", "steps/s", pair("mlp"))]


if __name__ == "__main__":
    main()
