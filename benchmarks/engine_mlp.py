"""In-process engine speed: one MLP training step against a numpy floor, per-op overhead
against torch.

    python benchmarks/engine_mlp.py [--rounds 15] [--out benchmarks/results/engine_mlp.md]

Everything is compared inside this one run, with medians over rounds (shared machines
drift):
1. One training step (forward, cross-entropy, backward, SGD lr=0.01) for batch 64,
   784-512-512-10 float32, written with gradserve.nn/optim on engine tensors, against the same
   step written by hand in numpy (the floor: what any numpy implementation must pay), and
   against torch when it is installed. Before timing, one step of each is checked to produce
   the same weights. Engine and floor alternate round by round; torch runs in a block of its
   own afterwards (its OpenMP workers spin after a step and would slow the next side). Each
   step is split into forward / zero_grad / backward / optimizer, and the minor page faults
   it takes are counted (fresh large arrays cost page faults, expensive in a VM). This runs
   in a child process with the machine's malloc settings, as a user's program starts:
   importing gradserve.engine keeps freed memory for reuse (engine/core/memory.py), so
   neither side pays page faults for fresh arrays and the comparison is of the computation.
2. Per-op overhead on tiny tensors: a chain of 1,000 ops alternating add and mul on
   2-element float32 tensors, for engine and torch, without grad, recording the graph, and
   recording plus backward. Per op in microseconds.
3. A diagnostic rerun of (1) in a child with GRADSERVE_KEEP_FREED_MEMORY=0 (glibc's
   defaults), to show what page faults on fresh arrays cost each side.
   --no-allocator-check skips it.

Targets: engine step <= 1.2x the numpy floor (issue 18; issue 6 asked 1.3x); engine per-op
overhead <= 3x torch's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import gradserve.nn as nn
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np
from gradserve import engine
from gradserve.engine.core.memory import keep_freed_memory as kept_freed_memory

SIZES = (784, 512, 512, 10)
BATCH = 64
LR = 0.01
CHAIN = 1000
ENV_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
UNTUNED = {"GRADSERVE_KEEP_FREED_MEMORY": "0"}  # the diagnostic: glibc's own defaults


def _try_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# -- 1. the training step ------------------------------------------------------------------------
def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)
    return x, y


class EngineStep:
    """The step as a user writes it with gradserve.nn and gradserve.optim."""

    def __init__(self, x, y, seed: int = 1):
        engine.manual_seed(seed)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(SIZES) - 2:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers)
        self.opt = optim.SGD(self.model.parameters(), lr=LR)
        self.x, self.y = engine.tensor(x), engine.tensor(y)

    def weights(self) -> list[np.ndarray]:
        return [p.detach().numpy().copy() for p in self.model.parameters()]

    def __call__(self, split=None):
        t0 = time.perf_counter()
        loss = F.cross_entropy(self.model(self.x), self.y)
        t1 = time.perf_counter()
        self.opt.zero_grad()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        self.opt.step()
        t4 = time.perf_counter()
        if split is not None:
            split.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))
        return loss


class NumpyStep:
    """The same step by hand in numpy: the floor an engine on numpy cannot beat."""

    def __init__(self, x, y, weights):
        self.x, self.y = x, y
        self.w = [w.copy() for w in weights]
        self.rows = np.arange(BATCH)

    def weights(self) -> list[np.ndarray]:
        return self.w

    def __call__(self, split=None):
        t0 = time.perf_counter()
        w1, b1, w2, b2, w3, b3 = self.w
        x, y, rows = self.x, self.y, self.rows
        h1 = x @ w1.T
        h1 += b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2.T
        h2 += b2
        a2 = np.maximum(h2, 0)
        logits = a2 @ w3.T
        logits += b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = (np.log(total[:, 0]) - shifted[rows, y]).mean()
        t1 = time.perf_counter()
        d3 = e / total  # softmax - onehot, over the batch
        d3[rows, y] -= 1
        d3 /= BATCH
        g3, gb3 = d3.T @ a2, d3.sum(axis=0)
        d2 = d3 @ w3
        d2 *= h2 > 0
        g2, gb2 = d2.T @ a1, d2.sum(axis=0)
        d1 = d2 @ w2
        d1 *= h1 > 0
        g1, gb1 = d1.T @ x, d1.sum(axis=0)
        t2 = time.perf_counter()
        for w, g in zip(self.w, (g1, gb1, g2, gb2, g3, gb3), strict=True):
            w -= LR * g
        t3 = time.perf_counter()
        if split is not None:
            split.append((t1 - t0, 0.0, t2 - t1, t3 - t2))
        return loss


class TorchStep:
    def __init__(self, torch, x, y, weights):
        self.torch = torch
        tn = torch.nn
        layers = [tn.Linear(784, 512), tn.ReLU(), tn.Linear(512, 512), tn.ReLU(),
                  tn.Linear(512, 10)]
        self.model = tn.Sequential(*layers)
        keys = list(self.model.state_dict())
        self.model.load_state_dict({k: torch.from_numpy(w.copy())
                                    for k, w in zip(keys, weights, strict=True)})
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def weights(self) -> list[np.ndarray]:
        return [p.detach().numpy() for p in self.model.parameters()]

    def __call__(self, split=None):
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss


def check_same_step(steps: dict) -> float:
    """Run one step of each from the same weights; the largest weight difference to numpy."""
    floor = steps["numpy floor"]
    floor()
    worst = 0.0
    for name, step in steps.items():
        if step is floor:
            continue
        step()
        for a, b in zip(step.weights(), floor.weights(), strict=True):
            diff = float(np.max(np.abs(a - b)))
            if diff > 1e-5:
                raise AssertionError(f"{name} step disagrees with the numpy floor by {diff}")
            worst = max(worst, diff)
    return worst


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def bench_step(rounds: int, per_round: int, with_torch: bool) -> dict:
    x, y = make_data()
    eng = EngineStep(x, y)
    steps = {"engine (gradserve.nn + optim)": eng,
             "numpy floor": NumpyStep(x, y, eng.weights())}
    torch = _try_torch() if with_torch else None
    if torch is not None:
        steps["torch"] = TorchStep(torch, x, y, eng.weights())
    max_diff = check_same_step(steps)
    for step in steps.values():  # warm caches, allocator and BLAS threads
        for _ in range(3):
            step()
    times = {name: [] for name in steps}
    splits = {name: [] for name in steps}
    faults = {name: [] for name in steps}

    def run(name):
        for _ in range(per_round):
            f0 = _minor_faults()
            t0 = time.perf_counter()
            steps[name](splits[name])  # the phase split costs four clock reads (< 1 us)
            times[name].append(time.perf_counter() - t0)
            faults[name].append(_minor_faults() - f0)

    # Engine and floor alternate round by round. Torch runs in a block of its own afterwards:
    # its OpenMP workers spin after each step and would slow whichever side ran next.
    for _ in range(rounds):
        for name in steps:
            if name != "torch":
                run(name)
    if "torch" in steps:
        for _ in range(rounds):
            run("torch")
    out = {"max_weight_diff": max_diff, "steps": {}, "kept_freed_memory": kept_freed_memory()}
    for name in steps:
        parts = list(zip(*splits[name], strict=True)) if splits[name] else []  # torch: none
        out["steps"][name] = {
            "ms": 1e3 * statistics.median(times[name]),
            "faults": statistics.median(faults[name]),
            "split_ms": [1e3 * statistics.median(p) for p in parts],
        }
    return out


# -- 2. per-op overhead ----------------------------------------------------------------------------
def _chain(lib, mode: str):
    """A closure running CHAIN ops (add, mul alternately) on 2-element float32 tensors."""
    a = lib.tensor([1.0, 2.0], requires_grad=mode != "no grad")
    b = lib.tensor([0.5, 0.25])

    def run():
        y = a
        for _ in range(CHAIN // 2):
            y = y + b
            y = y * b
        if mode == "graph + backward":
            y.sum().backward()
            a.grad = None

    if mode == "no grad":
        def no_grad_run():
            with lib.no_grad():
                run()
        return no_grad_run
    return run


def bench_per_op(rounds: int, with_torch: bool) -> dict:
    libs = {"engine": engine}
    torch = _try_torch() if with_torch else None
    if torch is not None:
        libs["torch"] = torch
    modes = ("no grad", "recording graph", "graph + backward")
    runs = {(lib, mode): _chain(mod, mode) for lib, mod in libs.items() for mode in modes}
    for run in runs.values():
        run()
    times = {key: [] for key in runs}
    for _ in range(rounds):
        for key, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - t0)
    a, b = np.array([1.0, 2.0], np.float32), np.array([0.5, 0.25], np.float32)

    def numpy_run():
        y = a
        for _ in range(CHAIN // 2):
            y = y + b
            y = y * b

    numpy_times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        numpy_run()
        numpy_times.append(time.perf_counter() - t0)
    us = {f"{lib}|{mode}": 1e6 * statistics.median(t) / CHAIN for (lib, mode), t in times.items()}
    us["numpy|no grad"] = 1e6 * statistics.median(numpy_times) / CHAIN
    return us


# -- where the time goes -------------------------------------------------------------------------
def profile_top(fn, repeat: int, top: int) -> list[tuple[str, int, float, float]]:
    """cProfile `fn` run `repeat` times. For the `top` functions by own time: (function,
    calls per run, own us per call, own us per run, cumulative us per run)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeat):
        fn()
    prof.disable()
    stats = pstats.Stats(prof).stats
    rows = []
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in stats.items():
        where = f"{os.path.relpath(path) if path.startswith('/') else path}:{line}({func})"
        rows.append((where, ncalls // repeat, 1e6 * tottime / max(ncalls, 1),
                     1e6 * tottime / repeat, 1e6 * cumtime / repeat))
    rows.sort(key=lambda r: -r[3])
    return rows[:top]


# -- report --------------------------------------------------------------------------------------
def machine_info() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        info = cfg["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:  # older numpy has no mode=dicts
        pass
    torch = _try_torch()
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs ({platform.machine()}, "
        f"{platform.system()} {platform.release()})",
        f"- Python {platform.python_version()}, numpy {np.__version__} (BLAS: {blas})"
        + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else
           ", torch not installed"),
        "- environment: " + ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in ENV_KEYS),
    ]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine", "client"],
                               capture_output=True, text=True, check=True).stdout.strip()
        lines.append(f"- gradserve commit {commit}" + (" (+ uncommitted changes in engine/ or "
                                                        "client/)" if dirty else ""))
    except (OSError, subprocess.CalledProcessError):
        pass
    return lines


def _step_table(step: dict, floor_name: str = "numpy floor") -> list[str]:
    floor_ms = step["steps"][floor_name]["ms"]
    lines = ["| step (64x784-512-512-10, f32) | median ms | vs numpy floor | minor faults "
             "/ step | forward | zero_grad | backward | optimizer |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in step["steps"].items():
        split = " | ".join(f"{v:.2f}" for v in r["split_ms"]) if r["split_ms"] else "| | |"
        if name == "torch":
            split = "- | - | - | -"
        lines.append(f"| {name} | {r['ms']:.2f} | {r['ms'] / floor_ms:.2f}x | "
                     f"{r['faults']:.0f} | {split} |")
    return lines


def render(args, step: dict, per_op: dict, diag: dict | None, profiles: dict,
           load: tuple[float, float]) -> str:
    eng_name = "engine (gradserve.nn + optim)"
    ratio = step["steps"][eng_name]["ms"] / step["steps"]["numpy floor"]["ms"]
    out = ["Machine:", *machine_info(),
           f"- 1-minute load average: {load[0]:.2f} at the start, {load[1]:.2f} at the end "
           "(other processes share these CPUs; sides are interleaved so they share the noise)",
           "",
           "The step, in a child process with the machine's malloc settings (importing "
           f"gradserve.engine kept freed memory for reuse: {step['kept_freed_memory']}), "
           f"so neither side pays page faults: medians over {args.rounds} rounds of "
           f"{args.per_round} steps each (engine and floor alternate; torch ran in a block "
           "of its own afterwards). "
           f"All sides compute the same step (largest weight difference to numpy after one "
           f"step: {step['max_weight_diff']:.1e}). Split columns are ms medians of the phases.",
           "", *_step_table(step), "",
           f"**Engine step / numpy floor: {ratio:.2f}x** (target <= 1.2x: "
           f"{'met' if ratio <= 1.2 else 'MISSED'})"]
    if "torch" in step["steps"]:
        t_ratio = step["steps"][eng_name]["ms"] / step["steps"]["torch"]["ms"]
        out.append(f"(engine / torch step: {t_ratio:.2f}x, for context)")
    out += ["", f"Per-op overhead: a chain of {CHAIN} ops (add, mul alternately) on 2-element "
            f"float32 tensors, median over {args.rounds} runs, microseconds per op.", "",
            "| mode | engine us/op | torch us/op | engine / torch |",
            "| --- | ---: | ---: | ---: |"]
    for mode in ("no grad", "recording graph", "graph + backward"):
        e = per_op[f"engine|{mode}"]
        t = per_op.get(f"torch|{mode}")
        out.append(f"| {mode} | {e:.2f} | {t:.2f} | **{e / t:.2f}x** |" if t else
                   f"| {mode} | {e:.2f} | - | - |")
    out.append(f"| (numpy, no autograd) | {per_op['numpy|no grad']:.2f} | | |")
    if "torch|no grad" in per_op:
        worst = max(per_op[f"engine|{m}"] / per_op[f"torch|{m}"]
                    for m in ("no grad", "recording graph", "graph + backward"))
        out += ["", f"**Engine / torch per op, worst mode: {worst:.2f}x** (target <= 3x: "
                f"{'met' if worst <= 3 else 'MISSED'})"]
    if diag is not None:
        out += ["", "Diagnostic (not the headline): the same step with glibc's defaults "
                "(GRADSERVE_KEEP_FREED_MEMORY=0), where fresh large arrays cost page faults:",
                "",
                *_step_table(diag), "",
                f"Engine step / numpy floor with the default allocator: "
                f"{diag['steps'][eng_name]['ms'] / diag['steps']['numpy floor']['ms']:.2f}x"]
    for title, rows in profiles.items():
        out += ["", f"cProfile, {title} (top functions by own time, per run):", "",
                "| function | calls | own us / call | own us | cumulative us |",
                "| --- | ---: | ---: | ---: | ---: |"]
        out += [f"| `{w}` | {n} | {per:.2f} | {own:.0f} | {cum:.0f} |"
                for w, n, per, own, cum in rows]
    return "\n".join(out)


def _child_step(args, with_torch: bool, env: dict) -> dict:
    """The step benchmark in a fresh process (its allocator state is its own)."""
    child = subprocess.run(
        [sys.executable, __file__, "--json-step-only", "--rounds", str(args.rounds),
         "--per-round", str(args.per_round)] + (["--no-torch"] if not with_torch else []),
        env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(child.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=5, help="steps per round and side")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    parser.add_argument("--no-allocator-check", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", help="write the markdown report here too")
    parser.add_argument("--json-step-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with_torch = not args.no_torch

    if args.json_step_only:  # the step benchmark's child process
        print(json.dumps(bench_step(args.rounds, args.per_round, with_torch)))
        return

    load_start = os.getloadavg()[0]
    step = _child_step(args, with_torch, {})
    per_op = bench_per_op(args.rounds, with_torch)
    diag = None if args.no_allocator_check else _child_step(args, False, UNTUNED)
    profiles = {}
    if not args.no_profile:
        x, y = make_data()
        profiles["engine training step"] = profile_top(EngineStep(x, y), 20, 12)
        profiles[f"engine {CHAIN}-op chain, recording graph"] = profile_top(
            _chain(engine, "recording graph"), 5, 12)
    text = render(args, step, per_op, diag, profiles, (load_start, os.getloadavg()[0]))
    print(text)
    if args.out:
        command = "python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]])
        with open(args.out, "w") as f:
            f.write(f"# benchmarks/engine_mlp.py\n\nCommand: `{command}`\n\n{text}\n")


if __name__ == "__main__":
    main()
