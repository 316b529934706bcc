"""A gradserve server for the examples: `gradserve serve --port 0` in a child process,
stopped when the example ends. A separate process, not a thread of the example's own,
so the server computes while the example's Python builds the next step."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys


@contextlib.contextmanager
def local_server():
    """Yield the address of a fresh server on a free loopback port.

    Its BLAS runs one thread unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS say otherwise:
    the examples' matrices are small, and on a two-CPU machine the example's own process
    needs the other CPU (idle BLAS threads spin, and slowed these runs several times over).
    """
    env = dict(os.environ)
    if "OPENBLAS_NUM_THREADS" not in env and "OMP_NUM_THREADS" not in env:
        env["OPENBLAS_NUM_THREADS"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "gradserve.server", "--host", "127.0.0.1",
                             "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline()  # "gradserve listening on HOST:PORT (devices: cpu)"
        if " on " not in line:
            raise RuntimeError(f"the gradserve server did not start: {line!r}")
        yield line.split(" on ")[1].split(" ")[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
