"""benchmarks/gpu_check.sh, as far as a machine without a GPU can run it: every stage on the
seam's test double (--fake), which checks the script and gpu_mlp.py's plumbing (three sides,
same weights after a step, the report), not a GPU."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(*args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={**os.environ, **(env or {})})


def test_gpu_check_runs_every_stage_on_the_fake(tmp_path):
    report = tmp_path / "gpu_check.md"
    done = _run("--fake", "--quick", env={"GPU_CHECK_OUT": str(report)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert re.search(r"^## suites on cuda \(\d+ s, exit 0\)$", text, re.M)
    assert re.search(r"^## gpu_mlp \(\d+ s, exit 0\)$", text, re.M)
    rows = dict(re.findall(r"^\| (torch|engine|remote) \| [\d.]+ \|.*\| ([\d.]+) \| [\de.+-]+ \|$",
                           text, re.M))
    # torch is an optional oracle: without it the report has gradserve's two sides
    sides = {"engine", "remote"} | ({"torch"} if importlib.util.find_spec("torch") else set())
    assert set(rows) == sides, text
    assert len(set(rows.values())) == 1  # the same first loss on every side
    assert "the numpy test double" in text


def _real_cupy() -> bool:
    """Whether a cupy other than the test double of tests/fakecuda is installed."""
    spec = importlib.util.find_spec("cupy")
    return spec is not None and (ROOT / "tests" / "fakecuda") not in pathlib.Path(
        spec.origin).parents


@pytest.mark.skipif(_real_cupy(), reason="cupy is installed")
def test_gpu_check_refuses_to_run_without_cupy():
    # without the test double on the path (tests/conftest.py puts it there)
    path = os.pathsep.join(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                           if p and "fakecuda" not in p)
    done = _run(env={"GRADSERVE_FAKE_CUDA": "", "PYTHONPATH": path})
    assert done.returncode == 1 and "need cupy" in done.stderr
