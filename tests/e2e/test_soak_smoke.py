"""benchmarks/soak.py in miniature, in CI: clients training while one is killed now and then,
garbage arrives and hostile clients (hooks that never answer, ops at the work limit, idle
streams) share the server; every gradient exact, nothing INTERNAL, only the killed and the
hostile clients fail.
(Its performance and memory targets are measured by the full run, benchmarks/results.)"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

SOAK = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.slow
def test_soak_smoke():
    run = subprocess.run([sys.executable, str(SOAK), "--clients", "3", "--seconds", "4",
                          "--churn", "0.7", "--single-steps", "200", "--json"],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    many, single = out["many_clients"], out["single_session"]
    assert out["server_alive"]
    assert many["steps"] > 0 and many["wrong_gradients"] == 0
    assert single["steps"] == 200 and single["wrong_gradients"] == 0
    assert "INTERNAL" not in many["server_errors_by_code"]
    assert set(many["garbage_codes"]) == {"INVALID_ARGUMENT"}
    assert all(kind.endswith("(killed)") for kind in many["client_errors"]), many
    # the hostile clients: hooks that never answered were failed by the server's
    # --callback-timeout, and ops at the work limit ran alongside
    assert many["hung_hook_errors"] == {"AutogradError": 2}, many
    assert many["work_limit_ops"] > 0
