"""randn and rand of 1e6 float32 (or --dtype float64, --n 1000), and randint, normal_ and
uniform_ of as many: gradserve (torch's stream in numpy) against numpy, torch, and the draws
gradserve made before it reproduced torch's stream, in one run.

    python benchmarks/random_draws.py --rounds 15 --out benchmarks/results/random_draws.md

Rows: `gradserve` is `engine.randn/rand(n)` end to end (the op, torch's mt19937 words from
numpy's MT19937, torch's Box-Muller in numpy, the blocks of words transformed on the calling
thread and on helper threads); `gradserve 1 thread` is the same with the helpers off
(`mt19937.DRAW_HELPERS = 0`; by default one less than the CPUs, or GRADSERVE_DRAW_HELPERS);
`before` is what engine/_random.py drew until API.md §8 (numpy's PCG64 Generator: ziggurat
normals and uniforms of the dtype; the engine's per-op overhead, a few microseconds, is not in it);
`numpy` is numpy's legacy MT19937 RandomState in float64 (the other way to get Mersenne Twister
numbers from numpy); `torch` is torch.randn/rand on one thread; `words` is the part of
gradserve's draw that no transformation can save: numpy's MT19937 C loop drawing the n 32-bit
words (as n/2 64-bit draws, its fastest call) that torch's kernels turn into n floats or
normals. `randint` is randint(0, 1000) (int64 whatever --dtype), `normal_` is
x.normal_(2.0, 3.0) and `uniform_` x.uniform_(-1.0, 2.0) in place on a tensor of --dtype
(`before`: numpy's PCG64 draws of the dtype, then the affine map in place). The sides alternate
within each round (the machine is shared and drifts); the table gives the median and the best
round in milliseconds, and the median of the process's CPU time (all its threads: for a side
on one thread it is the wall time without the waits that other work on the machine causes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from engine_mlp import machine_info  # benchmarks/ is the script's folder: on sys.path
from gradserve import engine
from gradserve.engine.core import mt19937


def _one_thread(fn):
    def run():
        helpers, mt19937.DRAW_HELPERS = mt19937.DRAW_HELPERS, 0
        try:
            return fn()
        finally:
            mt19937.DRAW_HELPERS = helpers

    return run


def _sides(n: int, dtype: str) -> dict:
    pcg = np.random.Generator(np.random.PCG64(0))
    legacy = np.random.RandomState(0)
    words = mt19937.CPUGenerator(0)
    sides = {
        ("randn", "gradserve"): lambda: engine.randn(n, dtype=dtype),
        ("randn", "gradserve 1 thread"): _one_thread(lambda: engine.randn(n, dtype=dtype)),
        ("randn", "before"): lambda: pcg.standard_normal(n, dtype=dtype),
        ("randn", "numpy"): lambda: legacy.standard_normal(n),
        ("randn", "words"): lambda: words.random64(n // 2),
        ("rand", "gradserve"): lambda: engine.rand(n, dtype=dtype),
        ("rand", "gradserve 1 thread"): _one_thread(lambda: engine.rand(n, dtype=dtype)),
        ("rand", "before"): lambda: pcg.random(n, dtype=dtype),
        ("rand", "numpy"): lambda: legacy.random_sample(n),
        ("rand", "words"): lambda: words.random64(n // 2),
    }
    x, buf = engine.zeros(n, dtype=dtype), np.zeros(n, dtype=dtype)

    def before_affine(draw, scale, shift):
        def run():
            draw(out=buf)
            np.multiply(buf, scale, out=buf)
            np.add(buf, shift, out=buf)

        return run

    sides.update({
        ("randint", "gradserve"): lambda: engine.randint(0, 1000, (n,)),
        ("randint", "before"): lambda: pcg.integers(0, 1000, n),
        ("normal_", "gradserve"): lambda: x.normal_(2.0, 3.0),
        ("normal_", "before"): before_affine(
            lambda out: pcg.standard_normal(n, dtype=dtype, out=out), 3.0, 2.0),
        ("uniform_", "gradserve"): lambda: x.uniform_(-1.0, 2.0),
        ("uniform_", "before"): before_affine(
            lambda out: pcg.random(n, dtype=dtype, out=out), 3.0, -1.0),
    })
    try:
        import torch
    except ImportError:
        return sides
    torch.set_num_threads(1)
    tdtype = getattr(torch, dtype)
    tx = torch.zeros(n, dtype=tdtype)
    sides[("randn", "torch")] = lambda: torch.randn(n, dtype=tdtype)
    sides[("rand", "torch")] = lambda: torch.rand(n, dtype=tdtype)
    sides[("randint", "torch")] = lambda: torch.randint(0, 1000, (n,))
    sides[("normal_", "torch")] = lambda: tx.normal_(2.0, 3.0)
    sides[("uniform_", "torch")] = lambda: tx.uniform_(-1.0, 2.0)
    return sides


def measure(n: int, rounds: int, reps: int, dtype: str = "float32") -> dict:
    engine.manual_seed(0)
    sides = _sides(n, dtype)
    times = {k: ([], []) for k in sides}  # wall, CPU
    for fn in sides.values():
        fn()  # warm up
    for _ in range(rounds):
        for key, fn in sides.items():
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(reps):
                fn()
            times[key][0].append((time.perf_counter() - start) / reps * 1e3)
            times[key][1].append((time.process_time() - cpu) / reps * 1e3)
    return times


def table(times: dict, n: int, dtype: str = "float32") -> str:
    lines = [f"| {n:.0e} {dtype} | side | median ms | best ms | median CPU ms |",
             "|---|---|---|---|---|"]
    order = list(dict.fromkeys(fn for fn, _ in times))  # each function's rows together
    for (fn, side), (ts, cpu) in sorted(times.items(), key=lambda kv: order.index(kv[0][0])):
        lines.append(f"| {fn} | {side} | {statistics.median(ts):.2f} | {min(ts):.2f} | "
                     f"{statistics.median(cpu):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--out")
    args = ap.parse_args()
    text = table(measure(args.n, args.rounds, args.reps, args.dtype), args.n, args.dtype)
    # helpers_now: how many the load left a draw at the end (0: the `gradserve` rows may
    # have run on one thread)
    text = (f"gradserve's draw helper threads: {mt19937.DRAW_HELPERS} (in use at the end: "
            f"{mt19937.helpers_now()}; load {os.getloadavg()[0]:.2f})\n\n{text}")
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            flags = f"--rounds {args.rounds}" + ("" if args.n == 1_000_000 else f" --n {args.n}")
            flags += "" if args.dtype == "float32" else f" --dtype {args.dtype}"
            f.write(f"# random_draws\n\n`python benchmarks/random_draws.py {flags}`\n\n"
                    + "\n".join(machine_info()) + f"\n\n{text}\n")


if __name__ == "__main__":
    main()
