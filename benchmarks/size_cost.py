"""What `gs.Size` adds to an op: one `Size(...)` per tensor made, while a shape read becomes a
slot read instead of numpy building a tuple. Prints nanoseconds, best of 9 repeats.

    python benchmarks/size_cost.py

The op chain of surface_ops.py (`--chain-only`) compares whole ops against another tree on
PYTHONPATH (see benchmarks/README.md); on a shared machine its run-to-run noise (+-25%)
hides a difference of this size, which is why the parts are timed here.
"""

from __future__ import annotations

import timeit

import numpy as np
from gradserve.engine import Size, randn


def best_ns(stmt: str, env: dict, number: int = 200_000) -> float:
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=9)) / number * 1e9


def main() -> None:
    a = np.zeros((2, 3))
    t = randn(2, 3)
    rows = [
        ("Size(shape): once per tensor made", best_ns("S(sh)", {"S": Size, "sh": a.shape})),
        ("ndarray.shape: what a shape read paid before", best_ns("a.shape", {"a": a})),
        ("Tensor.shape: a shape read now (property, slot)", best_ns("t.shape", {"t": t})),
        ("tuple[0]", best_ns("s[0]", {"s": a.shape})),
        ("Size[0]", best_ns("s[0]", {"s": Size(a.shape)})),
        ("one add, for scale", best_ns("t + t", {"t": t}, number=20_000)),
    ]
    print("| what | ns |\n|---|---|")
    for name, ns in rows:
        print(f"| {name} | {ns:.0f} |")


if __name__ == "__main__":
    main()
