"""Training steps per second of the digits CNN: remote (a real server process on loopback)
against in-process (gradserve.engine) against torch CPU, in one run.

    python benchmarks/train_digits.py --rounds 7 --out benchmarks/results/train_digits.md

The step is examples/train_digits.py's: a batch of 64 8x8 digits indexed out of the
uploaded training set, the CNN (conv 1->16, BatchNorm, ReLU, max-pool, conv 16->32, ReLU,
max-pool, linear 128->10), cross-entropy, backward, Adam. The remote side runs the very same
code against a `gradserve serve` subprocess: a step only records (no wait), and each round
ends by waiting until the server ran all of it. The sides alternate round by round; the table
gives medians, with the minor page faults per step of each gradserve side (this process
for in-process, the server's from /proc): both run with memory kept for reuse (the engine
keeps freed memory when imported, `gradserve serve` tunes its own malloc), so neither side
pays faults the other does not. Target: remote >= 0.75x in-process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import gradserve as gs
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np
from engine_mlp import machine_info  # benchmarks/ is the script's folder: on sys.path
from gradserve import engine
from gradserve.engine.core.memory import keep_freed_memory as kept_freed_memory
from gradserve.examples.train_digits import load_digits, make_cnn
from remote_mlp import ServerProcess

BATCH = 64


def gradserve_steps(session, x_np, y_np):
    session.manual_seed(0)
    model = make_cnn(session)
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = session.tensor(x_np), session.tensor(y_np)
    rng = np.random.default_rng(0)

    def step():
        idx = session.tensor(rng.integers(0, len(x_np), BATCH))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def torch_steps(torch, x_np, y_np):
    tnn = torch.nn
    torch.manual_seed(0)
    model = tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(),
                           tnn.MaxPool2d(2), tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(),
                           tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.tensor(x_np), torch.tensor(y_np)
    rng = np.random.default_rng(0)

    def step():
        idx = torch.tensor(rng.integers(0, len(x_np), BATCH))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _own_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def steps_per_second(step, n: int, finish=None) -> float:
    """Steps per second over `n` steps, counting until the last one has run: a remote step
    only records (backward and the optimizer do not wait), so `finish` waits for the server."""
    start = time.perf_counter()
    for _ in range(n):
        step()
    if finish is not None:
        finish()
    return n / (time.perf_counter() - start)


def measure(torch, x_np, y_np, rounds: int, per_round: int, threads: int | None):
    """Steps/s of the three sides, alternating; `threads` limits BLAS (server and here) and
    torch to that many threads, None leaves the machine's defaults."""
    import contextlib

    env_before = os.environ.get("OPENBLAS_NUM_THREADS")
    # the server gets the BLAS threads this process has (OpenBLAS's default: one per CPU),
    # not the examples' one-thread default: both gradserve sides compute alike
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads or os.cpu_count())
    limit = contextlib.nullcontext()
    default_torch = torch.get_num_threads()
    if threads is not None:
        from threadpoolctl import threadpool_limits  # comes with scikit-learn

        limit = threadpool_limits(limits=threads, user_api="blas")
        torch.set_num_threads(threads)
    rates: dict[str, list[float]] = {"remote": [], "in-process": [], "torch": []}
    faults = {"remote": 0, "in-process": 0}
    server = ServerProcess()
    try:
        with limit, gs.connect(server.address) as client, client.session() as s:
            sides = {"remote": gradserve_steps(s, x_np, y_np),
                     "in-process": gradserve_steps(engine, x_np, y_np),
                     "torch": torch_steps(torch, x_np, y_np)}
            finish = {"remote": s.synchronize}
            for name, step in sides.items():  # warm up
                steps_per_second(step, 3, finish.get(name))
            waits = s.stats.waits
            count = {"remote": server.minor_faults, "in-process": _own_faults}
            for _ in range(rounds):
                for name, step in sides.items():
                    f0 = count[name]() if name in count else 0
                    rates[name].append(steps_per_second(step, per_round, finish.get(name)))
                    if name in count:
                        faults[name] += count[name]() - f0
            waits_per_step = (s.stats.waits - waits) / (rounds * per_round)
    finally:
        server.stop()
        torch.set_num_threads(default_torch)
        if env_before is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = env_before
    return rates, waits_per_step, {k: v / (rounds * per_round) for k, v in faults.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    import torch

    x_np, y_np, _, _ = load_digits()
    lines = [
        "# benchmarks/train_digits.py", "",
        f"Command: `python benchmarks/train_digits.py --rounds {args.rounds} --per-round "
        f"{args.per_round}" + (f" --out {args.out}`" if args.out else "`"), "",
        "Machine:", *machine_info(), "",
        f"The digits CNN of examples/train_digits.py, batch {BATCH}, Adam: training steps per "
        f"second, medians over {args.rounds} alternating rounds of {args.per_round} steps. "
        "The remote side talks to a `gradserve serve` subprocess over loopback. Measured "
        "twice in the same run: with the machine's default threads (BLAS in both gradserve "
        "processes, torch) and with one thread each, since idle BLAS threads spinning on a "
        "shared 2-CPU machine make the default numbers swing widely.",
    ]
    for label, threads in (("default threads", None), ("1 thread each", 1)):
        rates, waits_per_step, faults = measure(torch, x_np, y_np, args.rounds, args.per_round,
                                        threads)
        med = {k: statistics.median(v) for k, v in rates.items()}
        ratio = med["remote"] / med["in-process"]
        lines += [
            "", f"### {label}", "",
            f"The remote side waited {waits_per_step:.2f} times per step. Minor page faults "
            f"per step: in-process {faults['in-process']:.0f} (engine keeps freed memory: "
            f"{kept_freed_memory()}), server {faults['remote']:.0f}.", "",
            "| side | steps/s (median) | min | max | ms/step |",
            "| --- | ---: | ---: | ---: | ---: |",
            *[f"| {k} | {med[k]:.1f} | {min(v):.1f} | {max(v):.1f} | {1e3 / med[k]:.1f} |"
              for k, v in rates.items()],
            "", f"**remote / in-process: {ratio:.2f}x** (target >= 0.75x: "
            f"{'met' if ratio >= 0.75 else 'MISSED'}); in-process / torch: "
            f"{med['in-process'] / med['torch']:.2f}x",
        ]
    lines += ["", f"1-minute load average at the end: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
