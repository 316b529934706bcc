"""Handoff time in a rolling update: SIGTERM to the client's next finished training step.

    python benchmarks/handoff.py [--rounds 10] [--out benchmarks/results/handoff.md]

Two `gradserve serve --state-dir DIR` processes (A, B) share a temp directory; a client
whose target names both (`ipv4:127.0.0.1:PA,127.0.0.1:PB`, gRPC's pick_first) trains on A
(SGD with momentum, cross-entropy, `loss.item()` every step); after step 10 of 30 it sends A
SIGTERM and carries on. A writes the session at its next quiet point, the client restores it
on B and resends what A did not answer. Measured per round: SIGTERM to the end of the first
step finished after the client restored the session (what the program notices), SIGTERM to
that restore, A's write of the session and B's restore (from their logs), the session's
bytes; every round's final weights must equal an
uninterrupted run's, bit for bit. Two model sizes: tiny (8-16-1) and medium
(784-512-512-10: 2.7 MB of weights, as much momentum and grads).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import gradserve as gs
import numpy as np

nn, F, optim = gs.nn, gs.nn.functional, gs.optim
SIZES = {"tiny": (64, (8, 16, 1)), "medium": (64, (784, 512, 512, 10))}
STEPS, SIGTERM_AFTER = 30, 10


class Server:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gradserve.server", "--port", "0",
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.port = int(self.proc.stdout.readline().split()[3].rsplit(":", 1)[1])
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def event(self, name: str) -> dict:
        return next(e for e in self.events if e["event"] == name)

    def stop(self) -> None:
        """Terminate it (if it still runs) and read its log to the end."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=60)
        self._reader.join(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()


def train(target: str, size: str, on_step=None):
    batch, dims = SIZES[size]
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, dims[0])).astype(np.float32)
    y_np = rng.integers(0, dims[-1], size=batch) if dims[-1] > 1 else None
    with gs.connect(target) as client, client.session() as s:
        s.manual_seed(0)
        layers = []
        for a, b in zip(dims[:-1], dims[1:], strict=False):
            layers += [nn.Linear(a, b, session=s), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = s.tensor(x_np)
        y = s.tensor(y_np) if y_np is not None else s.randn(batch, 1)
        ends = []
        for step in range(1, STEPS + 1):
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y) if y_np is not None else F.mse_loss(out, y)
            loss.backward()
            opt.step()
            loss.item()
            ends.append(time.monotonic())
            if on_step is not None:
                on_step(step)
        return s.fetch(list(model.parameters())), ends


class Restored(logging.Handler):
    """When the SDK logged that it restored a session (its one line about a move)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.at: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "moved off its draining server" in record.getMessage():
            self.at.append(time.monotonic())


def rounds(size: str, n: int) -> dict:
    restored = Restored()
    logging.getLogger("gradserve").addHandler(restored)
    with tempfile.TemporaryDirectory() as tmp:
        ref = Server()
        want, _ = train(f"127.0.0.1:{ref.port}", size)
        ref.stop()
        times, resumed, writes, restores, nbytes, equal = [], [], [], [], [], 0
        for r in range(n):
            state = os.path.join(tmp, f"state{r}")
            a, b = Server("--state-dir", state), Server("--state-dir", state)
            sent = {}

            def on_step(step, a=a, sent=sent):
                if step == SIGTERM_AFTER:
                    sent["at"] = time.monotonic()
                    a.proc.send_signal(signal.SIGTERM)

            restored.at.clear()
            got, ends = train(f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}", size, on_step)
            a.stop()
            b.stop()
            # A may still run a step it received before the signal took effect: the step
            # that shows the handoff is the first to finish after the session was restored
            (moved,) = restored.at
            times.append(min(t for t in ends if t > moved) - sent["at"])
            resumed.append(moved - sent["at"])
            written = a.event("session.written")
            writes.append(written["seconds"])
            nbytes.append(written["bytes"])
            restores.append(b.event("session.restored")["seconds"])
            equal += all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    logging.getLogger("gradserve").removeHandler(restored)
    return {"size": size, "rounds": n, "equal": equal, "handoff_ms": [t * 1000 for t in times],
            "resumed_ms": [t * 1000 for t in resumed],
            "write_ms": [t * 1000 for t in writes], "restore_ms": [t * 1000 for t in restores],
            "bytes": statistics.median(nbytes)}


def _stats(values: list[float]) -> str:
    return (f"{min(values):.0f} / {statistics.median(values):.0f} / "
            f"{max(values):.0f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out")
    args = p.parse_args()
    results = [rounds(size, args.rounds) for size in SIZES]
    lines = ["# Handoff", "", f"`python benchmarks/handoff.py --rounds {args.rounds}`", "",
             f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}; shared with other jobs while it ran. Both servers "
             "and the client on one loopback; the state dir on the local disk.", "",
             "| model | session bytes | rounds equal to an uninterrupted run | SIGTERM to the "
             "first step finished on B | SIGTERM to the session restored on B | A writes "
             "the session | B restores it |", "| --- | ---: | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['size']} | {r['bytes']:,.0f} | {r['equal']} of {r['rounds']} | "
                     f"{_stats(r['handoff_ms'])} | {_stats(r['resumed_ms'])} | "
                     f"{_stats(r['write_ms'])} | {_stats(r['restore_ms'])} |")
    lines += ["", "Milliseconds, min / median / max over the rounds. The first column is what "
              "the program notices: from SIGTERM to the end of the first step that finished "
              "after the client restored the session (it includes the rest of the step that "
              "was running, the write on A, A closing its listener, the client reconnecting "
              "to B, the restore, the resent requests and the step's own compute, a few ms "
              "for tiny, tens of ms for medium). A's write and B's restore are their own "
              "logs' timings (`session.written`, `session.restored`).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
