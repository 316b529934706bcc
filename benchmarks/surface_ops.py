"""Per-op overhead of issue 7's and 16's ops in the engine against torch, on tiny tensors.

    python benchmarks/surface_ops.py [--rounds 15] [--out benchmarks/results/surface_ops.md]
    python benchmarks/surface_ops.py --chain-only   # the add/mul chain alone (any gradserve)

For each op, a chain of CALLS calls on 2x3 float32 tensors (3x3 float64 matrices for the
linear-algebra ones; each result feeding the next, so nothing is cached) is timed three
ways: without grad, recording the graph, and recording plus one backward through it; the
median over rounds, per call, in microseconds, for the engine and for torch (one thread:
at this size torch's thread pool only adds cost), and their ratio. Target: the engine within
3x of torch, as for the existing ops (benchmarks/engine_mlp.py).

`--chain-only` times engine_mlp's add/mul chain (1,000 ops on 2-element tensors) and prints
it as JSON: run it once with this tree and once with another on PYTHONPATH to see whether a
change moved the engine's per-op path.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np

CALLS = 200

# (name, fn(lib, x, aux)): one op per call, taking and giving the running 2x3 float tensor;
# "add" is an existing op, for scale
OPS = [
    ("add (existing)", lambda L, x, a: x + a["y"]),
    ("maximum", lambda L, x, a: L.maximum(x, a["y"])),
    ("atan2", lambda L, x, a: x.atan2(a["y"])),
    ("lerp", lambda L, x, a: x.lerp(a["y"], 0.5)),
    ("rsqrt", lambda L, x, a: x.rsqrt()),
    ("masked_fill", lambda L, x, a: x.masked_fill(a["mask"], 0.5)),
    ("gather", lambda L, x, a: x.gather(1, a["idx"])),
    ("index_select", lambda L, x, a: x.index_select(1, a["perm"])),
    ("cumsum", lambda L, x, a: x.cumsum(1)),
    ("flip", lambda L, x, a: x.flip(1)),
    ("tril", lambda L, x, a: x.tril(1)),
    ("sort", lambda L, x, a: x.sort(1).values),
    # issue 16 (API.md section 7)
    ("mm", lambda L, x, a: x.mm(a["sq"])),
    ("addmm", lambda L, x, a: L.addmm(x, x, a["sq"])),
    ("bmm (+ 2 views)", lambda L, x, a: x.unsqueeze(0).bmm(a["sq"].unsqueeze(0)).squeeze(0)),
    ("linalg.cross", lambda L, x, a: L.linalg.cross(x, a["y"])),
    ("F.normalize", lambda L, x, a: _F(L).normalize(x, dim=1)),
    ("conv_transpose2d 1x1", lambda L, x, a: _F(L).conv_transpose2d(
        x.reshape(1, 1, 2, 3), a["k11"]).reshape(2, 3)),
    ("interpolate nearest", lambda L, x, a: _F(L).interpolate(
        x.unsqueeze(0), size=3).squeeze(0)),
    ("interpolate linear", lambda L, x, a: _F(L).interpolate(
        x.unsqueeze(0), size=3, mode="linear").squeeze(0)),
    ("pixel_shuffle r=1", lambda L, x, a: _F(L).pixel_shuffle(x.reshape(1, 1, 2, 3),
                                                              1).reshape(2, 3)),
    # issue 16's one-kernel forms (torch's grad_fn and edges)
    ("F.linear (+bias)", lambda L, x, a: _F(L).linear(x, a["sq"], a["b3"])),
    ("where", lambda L, x, a: L.where(a["mask"], x, a["y"])),
    ("pow 1.0", lambda L, x, a: x.pow(1.0)),
    ("kron (x, 1x1)", lambda L, x, a: L.kron(x, a["one11"])),
    ("cdist (2x3, 3x3)", lambda L, x, a: L.cdist(x, a["sq"])),
    ("interpolate bilinear", lambda L, x, a: _F(L).interpolate(
        x.reshape(1, 1, 2, 3), size=(2, 3), mode="bilinear").reshape(2, 3)),
    ("unfold 1x1", lambda L, x, a: _F(L).unfold(x.reshape(1, 1, 2, 3), 1).reshape(2, 3)),
    ("fold 1x1", lambda L, x, a: _F(L).fold(x.reshape(1, 6, 1), (1, 1), 1).reshape(2, 3)),
    ("adaptive_max_pool2d", lambda L, x, a: _F(L).adaptive_max_pool2d(
        x.reshape(1, 1, 2, 3), (2, 3)).reshape(2, 3)),
    # issue 16, this stop: new kernels and torch's compositions
    ("F.rrelu (training)", lambda L, x, a: _F(L).rrelu(x, training=True)),
    ("F.prelu", lambda L, x, a: _F(L).prelu(x, a["w3"])),
    ("F.soft_margin_loss none", lambda L, x, a: _F(L).soft_margin_loss(
        x, a["sign"], reduction="none")),
    ("F.cosine_similarity (+x)", lambda L, x, a: x + _F(L).cosine_similarity(
        x, a["y"]).unsqueeze(1)),
    ("x + x[0, 1:].sum()", lambda L, x, a: x + x[0, 1:].sum()),
    ("reshape of a transpose", lambda L, x, a: x.t().reshape(2, 3)),
    # batched matmul and einsum record torch's expand, reshape, bmm, _unsafe_view
    ("matmul batched (+ 2 views)", lambda L, x, a: (x.view(2, 1, 3) @ a["sq2"]).view(2, 3)),
    ("einsum bij,bjk (+ 2 views)", lambda L, x, a: L.einsum("bij,bjk->bik", x.view(2, 1, 3),
                                                           a["sq2"]).view(2, 3)),
    # torch's math path (3-D inputs): scale, batched matmul, _safe_softmax, batched matmul
    ("sdpa 3-D math path", lambda L, x, a: _F(L).scaled_dot_product_attention(
        x.view(1, 2, 3), x.view(1, 2, 3), x.view(1, 2, 3)).view(2, 3)),
    ("batch_norm eval", lambda L, x, a: _F(L).batch_norm(x, a["b3"], a["w3"])),
]
# on a well-conditioned 3x3 float64 matrix
MATRIX_OPS = [
    ("matmul (existing)", lambda L, x, a: x @ a["orth"]),
    ("linalg.inv", lambda L, x, a: L.linalg.inv(x)),
    ("linalg.solve", lambda L, x, a: L.linalg.solve(a["well"], x) + a["eye"]),
    ("linalg.det (x * det)", lambda L, x, a: x * L.linalg.det(x)),
    ("linalg.eigh vectors", lambda L, x, a: L.linalg.eigh(x + x.mT).eigenvectors + a["well"]),
    ("linalg.svd U", lambda L, x, a: L.linalg.svd(x).U + a["well"]),
    ("matrix_power 3", lambda L, x, a: L.matrix_power(x, 3) * 0.01 + a["well"]),
    ("linalg.pinv", lambda L, x, a: L.linalg.pinv(x) + a["well"]),
    ("linalg.solve left=False", lambda L, x, a: L.linalg.solve(a["well"], x, left=False)
     + a["eye"]),
]


def _F(L):
    if L.__name__ == "torch":
        import torch.nn.functional as F
    else:
        import gradserve.nn.functional as F
    return F


def _aux(L):
    well = np.array([[3.0, 0.5, 0.2], [0.1, 2.5, 0.4], [0.3, 0.2, 2.0]])
    orth = np.linalg.qr(well)[0]
    return {"y": L.tensor(np.full((2, 3), 0.5, np.float32)),
            "sq": L.tensor(np.eye(3, dtype=np.float32) * 0.9 + 0.01),
            "sq2": L.tensor(np.stack([np.eye(3, dtype=np.float32) * 0.9 + 0.01] * 2)),
            "k11": L.tensor(np.ones((1, 1, 1, 1), np.float32)),
            "b3": L.tensor(np.full(3, 0.01, np.float32)),
            "w3": L.tensor(np.array([0.2, 0.25, 0.3], np.float32)),
            "one11": L.tensor(np.ones((1, 1), np.float32)),
            "well": L.tensor(well), "orth": L.tensor(orth), "eye": L.tensor(np.eye(3)),
            "mask": L.tensor(np.array([[True, False, True], [False, True, False]])),
            "idx": L.tensor(np.array([[2, 0, 1], [1, 2, 0]])),
            "perm": L.tensor(np.array([2, 0, 1])),
            "sign": L.tensor(np.array([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]], np.float32))}


def _chain(L, fn, mode: str, matrix: bool = False):
    start = (np.array([[3.0, 0.5, 0.2], [0.1, 2.5, 0.4], [0.3, 0.2, 2.0]]) if matrix
             else np.linspace(0.1, 0.6, 6, dtype=np.float32).reshape(2, 3))
    x0 = L.tensor(start, requires_grad=mode != "no grad")
    aux = _aux(L)

    def run():
        x = x0
        for _ in range(CALLS):
            x = fn(L, x, aux)
        if mode == "graph + backward":
            x.sum().backward()
            x0.grad = None

    if mode == "no grad":
        def quiet():
            with L.no_grad():
                run()
        return quiet
    return run


MODES = ("no grad", "recording graph", "graph + backward")


def bench_ops(rounds: int) -> dict:
    from gradserve import engine

    libs = {"engine": engine}
    try:
        import torch

        torch.set_num_threads(1)
        libs["torch"] = torch
    except ImportError:
        pass
    out = {}
    for name, fn, matrix in [(n, f, False) for n, f in OPS] + [(n, f, True)
                                                                 for n, f in MATRIX_OPS]:
        runs = {(lib, mode): _chain(mod, fn, mode, matrix) for lib, mod in libs.items()
                for mode in MODES}
        for run in runs.values():
            run()  # warm up (and check it runs)
        times = {key: [] for key in runs}
        for _ in range(rounds):
            for key, run in runs.items():
                t0 = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - t0)
        out[name] = {f"{lib}|{mode}": statistics.median(t) / CALLS * 1e6
                     for (lib, mode), t in times.items()}
    return out


def bench_chain(rounds: int) -> dict:
    """engine_mlp's chain (1,000 ops alternating add and mul on 2-element tensors), per op."""
    import os

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from engine_mlp import CHAIN, _chain
    from gradserve import engine

    out = {}
    for mode in MODES:
        run = _chain(engine, mode)
        run()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        out[mode] = statistics.median(times) / CHAIN * 1e6
    return out


def report(ops: dict, rounds: int, command: str) -> str:
    lines = ["# Per-op overhead of issue 7's and issue 16's ops: engine vs torch", "",
             f"Command: `{command}`", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}, "
             f"numpy {np.__version__}" + _torch_version() + f"; {rounds} rounds, median.", "",
             f"A chain of {CALLS} calls of one op on 2x3 float32 tensors (3x3 float64 "
             "matrices for linalg), each call's result "
             "the next one's input; microseconds per call (the backward mode: the chain plus one "
             "backward through it, per op). Target: engine <= 3x torch, as for the existing "
             "ops (`add`, and benchmarks/results/engine_mlp.md).", "",
             "| op | mode | engine µs | torch µs | engine / torch |",
             "| --- | --- | ---: | ---: | ---: |"]
    worst = 0.0
    for name, row in ops.items():
        for mode in MODES:
            e, t = row[f"engine|{mode}"], row.get(f"torch|{mode}")
            ratio = "" if t is None else f"{e / t:.2f}"
            if t is not None:
                worst = max(worst, e / t)
            lines.append(f"| {name} | {mode} | {e:.1f} | "
                         f"{'' if t is None else f'{t:.1f}'} | {ratio} |")
    lines += ["", f"Largest engine / torch ratio: {worst:.2f}." if worst else ""]
    return "\n".join(lines) + "\n"


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return ", torch not installed"
    return f", torch {torch.__version__} (1 thread)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--out", default=None)
    p.add_argument("--chain-only", action="store_true")
    args = p.parse_args()
    if args.chain_only:
        print(json.dumps(bench_chain(args.rounds)))
        return
    text = report(bench_ops(args.rounds), args.rounds,
                  "python " + " ".join(["benchmarks/surface_ops.py", *sys.argv[1:]]))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
