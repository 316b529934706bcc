"""What printing a large tensor costs (issue 16): the time and the extra memory of repr() of
a 256 MB float32 tensor in-process, and the bytes a remote tensor's repr fetches.

    python benchmarks/print_large.py [--mb 256] [--rounds 5] [--out results/print_large.md]

Targets: < 50 ms and < 10 MB extra in-process; < 64 KB fetched remotely (torch's summary
shows 3 edge items per long dim, so the cost is that of the shown part, whatever the size).
The remote half starts a server in this process on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np


def in_process(mb: int, rounds: int) -> dict:
    from gradserve import engine

    n = int((mb * 2**20 / 4) ** 0.5)
    t = engine.from_numpy(np.ones((n, n), np.float32))
    repr(t)  # warm up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        repr(t)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    repr(t)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"shape": [n, n], "median_ms": statistics.median(times) * 1e3,
            "peak_extra_mb": peak / 2**20}


def remote(mb: int) -> dict:
    import gradserve as gs
    from gradserve.server import create_server

    server, port = create_server("127.0.0.1:0", devices=["cpu"])
    server.start()
    try:
        with gs.connect(f"127.0.0.1:{port}") as client, client.session() as s:
            n = int((mb * 2**20 / 4) ** 0.5)
            t = s.ones(n, n)
            s.synchronize()
            before = s.stats.bytes_down
            t0 = time.perf_counter()
            repr(t)
            return {"shape": [n, n], "ms": (time.perf_counter() - t0) * 1e3,
                    "bytes_fetched": s.stats.bytes_down - before}
    finally:
        server.stop(0).wait()


def report(args, local: dict, far: dict) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**MISSED**"

    command = "python benchmarks/print_large.py " + " ".join(sys.argv[1:])
    return "\n".join([
        "# benchmarks/print_large.py", "",
        f"Command: `{command.strip()}`", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; 1-minute load average {os.getloadavg()[0]:.2f}.", "",
        f"repr() of a {args.mb} MB float32 tensor ({local['shape'][0]} x {local['shape'][1]}):",
        "", "| measure | result | target (issue 16) |", "| --- | ---: | --- |",
        f"| in-process, median of {args.rounds} | {local['median_ms']:.2f} ms | < 50 ms: "
        f"{verdict(local['median_ms'] < 50)} |",
        f"| in-process, peak extra memory (tracemalloc) | {local['peak_extra_mb']:.3f} MB | "
        f"< 10 MB: {verdict(local['peak_extra_mb'] < 10)} |",
        f"| remote session, bytes fetched | {far['bytes_fetched']:,} B | < 64 KB: "
        f"{verdict(far['bytes_fetched'] < 64 * 1024)} |",
        f"| remote session, time | {far['ms']:.2f} ms | |", ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", help="also write the results as markdown to this file")
    args = p.parse_args()
    local, far = in_process(args.mb, args.rounds), remote(args.mb)
    print(json.dumps({"in_process": local, "remote": far}, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            f.write(report(args, local, far))


if __name__ == "__main__":
    main()
