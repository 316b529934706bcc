"""One MLP training step on a GPU: the in-process engine, a remote session, PyTorch CUDA.

    python benchmarks/gpu_mlp.py [--sizes small,large] [--rounds 7] [--steps 5] [--out FILE]

Needs a CUDA GPU, cupy (`pip install -e '.[cuda12]'` or `[cuda13]`) and, for the reference,
a CUDA build of torch; `benchmarks/gpu_check.sh` runs it after the suites. Without torch CUDA
the torch column is left out (or `--torch-device cpu` runs torch on the host, for the
weights check only).

The step, as a user writes it: `F.linear` / `F.relu` layers, `F.cross_entropy` on class
indices, `loss.backward()`, `optim.SGD(lr=0.01).step()`, `loss.item()`; float32. Sizes:
small = batch 256, 2048-2048-2048-10; large = batch 4096, 4096-4096-4096-10 (tiny = batch 8,
16-16-16-10, for tests). Sides: torch on CUDA; the engine in this process on the GPU; a
session on a `gradserve serve --devices DEVICE` process on loopback, on the same GPU. All
start from the same weights; after one step each side's weights must match torch's (or the
engine's, without torch). Sides alternate block by block, medians over the rounds.

Targets (issue 9): engine <= 1.5x torch on small and <= 1.15x on large; remote <= 1.1x
in-process on large.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import gradserve as gs
import numpy as np
from gradserve import engine
from gradserve.engine.core.backend import backend

F = gs.nn.functional
SIZES = {"tiny": (8, (16, 16, 16, 10)), "small": (256, (2048, 2048, 2048, 10)),
         "large": (4096, (4096, 4096, 4096, 10))}
TARGETS = {"small": [("engine", "torch", 1.5)],
           "large": [("engine", "torch", 1.15), ("remote", "engine", 1.1)]}
LR = 0.01


def make_data(batch: int, dims: tuple, seed: int = 0):
    """Inputs, class indices and (weight, bias) per layer in torch's Linear layout."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, dims[0])).astype(np.float32)
    y = rng.integers(0, dims[-1], batch)
    layers = [((rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32),
               np.zeros(o, np.float32)) for i, o in zip(dims[:-1], dims[1:], strict=True)]
    return x, y, layers


class GsStep:
    """The step on gradserve tensors: in-process (`make` = engine on the GPU) or remote."""

    def __init__(self, make, x, y, layers) -> None:
        self.x, self.y = make(x, False), make(y, False)
        self.layers = [(make(w, True), make(b, True)) for w, b in layers]
        self.opt = gs.optim.SGD([p for pair in self.layers for p in pair], lr=LR)

    def __call__(self) -> float:
        h = self.x
        for i, (w, b) in enumerate(self.layers):
            h = F.linear(h, w, b)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        loss = F.cross_entropy(h, self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def weights(self) -> list[np.ndarray]:
        return [t.detach().cpu().numpy() for pair in self.layers for t in pair]


class TorchStep:
    def __init__(self, torch, device, x, y, layers) -> None:
        self.F = torch.nn.functional
        self.x = torch.tensor(x, device=device)
        self.y = torch.tensor(y, device=device)
        self.layers = [(torch.tensor(w, device=device, requires_grad=True),
                        torch.tensor(b, device=device, requires_grad=True)) for w, b in layers]
        self.opt = torch.optim.SGD([p for pair in self.layers for p in pair], lr=LR)

    def __call__(self) -> float:
        h = self.x
        for i, (w, b) in enumerate(self.layers):
            h = self.F.linear(h, w, b)
            if i < len(self.layers) - 1:
                h = self.F.relu(h)
        loss = self.F.cross_entropy(h, self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()  # waits for the GPU, as the other sides' item() does

    def weights(self) -> list[np.ndarray]:
        return [t.detach().cpu().numpy() for pair in self.layers for t in pair]


class Server:
    """`gradserve serve --devices DEVICE` on a free loopback port."""

    def __init__(self, device: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradserve.server", "--port", "0", "--devices", device],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m = re.search(r"listening on (\S+)", self.proc.stdout.readline())
        if m is None:
            self.proc.kill()
            raise RuntimeError(f"gradserve serve --devices {device} did not start")
        self.address = m.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _torch(device: str):
    try:
        import torch
    except ImportError:
        return None
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None
    return torch


def bench_size(name: str, args, torch, client) -> dict:
    batch, dims = SIZES[name]
    x, y, layers = make_data(batch, dims)
    sides = {}
    if torch is not None:
        sides["torch"] = TorchStep(torch, args.torch_device, x, y, layers)
    sides["engine"] = GsStep(lambda a, rg: engine.tensor(a, device=args.device, requires_grad=rg),
                             x, y, layers)
    session = None
    if client is not None:
        session = client.session(device=args.device)
        sides["remote"] = GsStep(lambda a, rg: session.tensor(a, requires_grad=rg), x, y,
                                 layers)
    losses = {side: step() for side, step in sides.items()}  # one step each, then compare
    reference = "torch" if "torch" in sides else "engine"
    ref = sides[reference].weights()
    diffs = {side: max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) or 1.0))
                       for a, b in zip(step.weights(), ref, strict=True))
             for side, step in sides.items()}
    times = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, step in sides.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[side].append((time.perf_counter() - t0) / args.steps)
    if session is not None:
        session.close()
    return {"ms": {s: 1e3 * statistics.median(t) for s, t in times.items()},
            "losses": losses, "diffs": diffs, "reference": reference}


def machine_info(args, torch) -> list[str]:
    xp = backend(args.device).xp
    try:
        props = xp.cuda.runtime.getDeviceProperties(int(args.device.split(":")[1]))
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except Exception:  # the fake has no properties
        gpu = f"{xp.__name__} (no device properties)"
    fake = os.environ.get("GRADSERVE_FAKE_CUDA", "0") not in ("", "0")  # tests/fakecuda
    cupy_version = "none: the fake" if fake else getattr(xp, "__version__", "?")
    lines = [f"- GPU {args.device}: {gpu}; cupy {cupy_version}; numpy {np.__version__}; "
             f"Python {platform.python_version()}; {os.cpu_count()} CPUs",
             "- torch: " + (f"{torch.__version__} on {args.torch_device}" if torch else
                            "not run (no CUDA build of torch here)")]
    if fake:
        lines.append("- GRADSERVE_FAKE_CUDA is set: the GPU is the numpy test double, so the "
                     "times say nothing about a GPU")
    return lines


def render(args, results: dict, info: list[str]) -> str:
    out = ["# gpu_mlp: one MLP training step on a GPU", "",
           f"`python benchmarks/gpu_mlp.py {' '.join(sys.argv[1:])}` on "
           f"{time.strftime('%Y-%m-%d %H:%M')}", "", *info, "",
           f"Medians of {args.rounds} rounds of {args.steps} steps per side, sides alternating. "
           "Weights after one step: largest difference to the reference, relative to its "
           "largest weight.", ""]
    for name, r in results.items():
        batch, dims = SIZES[name]
        ms = r["ms"]
        out += [f"## {name}: batch {batch}, {'-'.join(map(str, dims))}, float32", "",
                "| side | ms / step | vs torch | vs engine | loss (1st step) | weights vs "
                f"{r['reference']} |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for side, t in ms.items():
            vs = [f"{t / ms[o]:.2f}x" if o in ms else "-" for o in ("torch", "engine")]
            out.append(f"| {side} | {t:.2f} | {vs[0]} | {vs[1]} | {r['losses'][side]:.5f} | "
                       f"{r['diffs'][side]:.1e} |")
        out.append("")
        for side, other, limit in TARGETS.get(name, []):
            if side in ms and other in ms:
                ratio = ms[side] / ms[other]
                out.append(f"- **{side} / {other}: {ratio:.2f}x** (target <= {limit}x: "
                           f"{'met' if ratio <= limit else 'MISSED'})")
        out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="small,large", help="comma-separated: tiny small large")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--torch-device", default=None, help="default: --device")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--no-remote", action="store_true")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest relative weight difference after one step")
    p.add_argument("--out", help="write the markdown report here too")
    args = p.parse_args()
    args.device = engine.canonical_device(args.device)
    args.torch_device = args.torch_device or args.device
    torch = _torch(args.torch_device)
    server = None if args.no_remote else Server(args.device)
    client = None if server is None else gs.connect(server.address)
    try:
        results = {name: bench_size(name, args, torch, client)
                   for name in args.sizes.split(",")}
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
    text = render(args, results, machine_info(args, torch))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    worst = max(d for r in results.values() for d in r["diffs"].values())
    if worst > args.tolerance:
        sys.exit(f"weights differ by {worst:.1e} after one step (tolerance {args.tolerance})")


if __name__ == "__main__":
    main()
