"""Remote custom autograd.Functions and hooks: time per call, round trips, server tensors.

    python benchmarks/remote_function.py [--rounds 7] [--calls 200] [--out FILE]

The server is a `python -m gradserve.server` process on loopback; the in-process side runs
here. Each round runs, per case, `--calls` iterations of `y = F(x * 1.0); y.sum().backward()`
(a Function saving an intermediate, as most do), in-process and on a session, sides
alternating; medians of the rounds are reported. Per remote case: the waits (round trips)
per iteration from `s.stats.waits`, and the session's server tensor count (DescribeSession)
before and after all rounds, which must not grow (issue 14 item 4: it grew by one per call).

Cases: a custom Function (Cube: x**3, backward 3*x*x*g), a tensor hook (g * 2) on a built-in
op, and the built-in op alone (x**3) for scale.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import gradserve as gs
from gradserve import engine


class Cube(gs.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


def _step(kind: str, x) -> None:
    if kind == "function":
        y = Cube.apply(x * 1.0)
    elif kind == "hook":
        y = (x * 1.0) ** 3
        y.register_hook(lambda g: g * 2)
    else:
        y = (x * 1.0) ** 3
    y.sum().backward()


def _run(kind: str, where, calls: int) -> float:
    x = where.tensor([1.0, 2.0, 3.0], requires_grad=True)
    started = time.perf_counter()
    for _ in range(calls):
        _step(kind, x)
    x.grad.sum().item()  # everything sent has run
    return (time.perf_counter() - started) / calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", help="also write the markdown table here")
    args = parser.parse_args(argv)
    proc = subprocess.Popen([sys.executable, "-m", "gradserve.server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        address = proc.stdout.readline().split()[3]
        rows = []
        with gs.connect(address) as client, client.session() as s:
            for kind in ("function", "hook", "builtin"):
                _run(kind, engine, 20), _run(kind, s, 20)  # warm up both sides
                before = s.info()["tensor_count"]
                local, remote, waits = [], [], []
                for _ in range(args.rounds):
                    local.append(_run(kind, engine, args.calls))
                    w = s.stats.waits
                    remote.append(_run(kind, s, args.calls))
                    waits.append((s.stats.waits - w - 1) / args.calls)  # less the final item
                after = s.info()["tensor_count"]
                lo, re_ = statistics.median(local), statistics.median(remote)
                rows.append((kind, lo * 1e6, re_ * 1e6, re_ / lo, statistics.median(waits),
                             before, after))
    finally:
        proc.kill()
        proc.wait()
    lines = [
        f"`python benchmarks/remote_function.py --rounds {args.rounds} --calls {args.calls}` "
        f"on {platform.machine()} ({os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}; medians of "
        f"{args.rounds} rounds of {args.calls} iterations (`y = F(x * 1.0); "
        "y.sum().backward()`).",
        "",
        "| case | in-process µs/iter | remote µs/iter | remote / in-process | waits/iter | "
        "server tensors before | after |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {k} | {lo:.0f} | {r:.0f} | {ratio:.1f}x | {w:.2f} | {b} | {a} |"
              for k, lo, r, ratio, w, b, a in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if all(b == a for *_, b, a in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
