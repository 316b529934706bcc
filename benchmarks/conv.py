"""Conv2d forward + backward: gradserve's engine against torch CPU, in one run.

    python benchmarks/conv.py --rounds 15 --out benchmarks/results/conv.md

One step is a Conv2d layer (batch 64, 32 -> 64 channels, 3x3, padding 1, 28x28, float32,
with bias) applied to an input that requires grad, then backward with a fixed upstream
gradient: so both sides compute the output and the input, weight and bias gradients. The
sides alternate round by round (this machine is shared, and its speed drifts), each round
timing a few steps; the table gives medians. Both compute the same numbers (checked first).
Target: gradserve <= 2x torch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import gradserve.nn as nn
import numpy as np
from engine_mlp import machine_info  # benchmarks/ is the script's folder: on sys.path
from gradserve import engine

SHAPE = dict(batch=64, cin=32, cout=64, size=28, k=3)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    s = SHAPE
    x = rng.standard_normal((s["batch"], s["cin"], s["size"], s["size"])).astype(np.float32)
    g = rng.standard_normal((s["batch"], s["cout"], s["size"], s["size"])).astype(np.float32)
    return x, g


def gradserve_step():
    x_np, g_np = _data()
    engine.manual_seed(0)
    conv = nn.Conv2d(SHAPE["cin"], SHAPE["cout"], SHAPE["k"], padding=1)
    x, g = engine.tensor(x_np, requires_grad=True), engine.tensor(g_np)

    def step():
        x.grad = None
        conv.zero_grad()
        conv(x).backward(g)
        return x.grad, conv.weight.grad, conv.bias.grad

    return conv, step


def torch_step(torch, conv_ours):
    x_np, g_np = _data()
    conv = torch.nn.Conv2d(SHAPE["cin"], SHAPE["cout"], SHAPE["k"], padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(conv_ours.weight.detach().numpy()))
        conv.bias.copy_(torch.tensor(conv_ours.bias.detach().numpy()))
    x, g = torch.tensor(x_np, requires_grad=True), torch.tensor(g_np)

    def step():
        x.grad = None
        conv.zero_grad()
        conv(x).backward(g)
        return x.grad, conv.weight.grad, conv.bias.grad

    return step


def _time(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1e3


def _threads(n: int | None, torch):
    """BLAS and torch limited to n threads (None: as the machine sets them)."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # comes with scikit-learn

    torch.set_num_threads(n)
    return threadpool_limits(limits=n, user_api="blas")


def measure(ours, theirs, rounds: int, per_round: int) -> dict:
    times = {"gradserve": [], "torch": []}
    for _ in range(rounds):
        times["gradserve"].append(_time(ours, per_round))
        times["torch"].append(_time(theirs, per_round))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args()
    import torch

    conv, ours = gradserve_step()
    theirs = torch_step(torch, conv)
    diff = max(float(np.abs(a.numpy() - b.numpy()).max() / (np.abs(b.numpy()).max() + 1e-12))
               for a, b in zip(ours(), theirs(), strict=True))
    default_threads = torch.get_num_threads()
    s = SHAPE
    lines = [
        "# benchmarks/conv.py", "",
        f"Command: `python benchmarks/conv.py --rounds {args.rounds} --per-round "
        f"{args.per_round}" + (f" --out {args.out}`" if args.out else "`"), "",
        "Machine:", *machine_info(), "",
        f"Conv2d forward + backward (input, weight and bias gradients): batch {s['batch']}, "
        f"{s['cin']} -> {s['cout']} channels, {s['k']}x{s['k']}, padding 1, "
        f"{s['size']}x{s['size']}, float32. Medians over {args.rounds} alternating rounds of "
        f"{args.per_round} steps. Largest relative difference between the two sides' "
        f"gradients: {diff:.1e}. Measured twice in the same run: with the threads the "
        f"machine gives (OpenBLAS and torch: {default_threads} each) and with one thread "
        "each (threadpoolctl, torch.set_num_threads), because on a shared 2-CPU machine "
        "OpenBLAS's spinning threads can slow the numpy side several times over.",
    ]
    for label, n in ((f"{default_threads} threads (default)", None), ("1 thread", 1)):
        with _threads(n, torch):
            times = measure(ours, theirs, args.rounds, args.per_round)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["gradserve"] / med["torch"]
        lines += [
            "", f"### {label}", "",
            "| side | median ms / step | min ms | max ms |", "| --- | ---: | ---: | ---: |",
            *[f"| {k} | {med[k]:.1f} | {min(v):.1f} | {max(v):.1f} |" for k, v in times.items()],
            "", f"**gradserve / torch: {ratio:.2f}x** (target <= 2x: "
            f"{'met' if ratio <= 2 else 'MISSED'})",
        ]
    torch.set_num_threads(default_threads)
    lines += ["", f"1-minute load average at the end: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
