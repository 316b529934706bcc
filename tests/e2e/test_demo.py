"""`gradserve demo`: the seed example end to end, as a user runs it."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from gradserve.server import _demo


def _console_script() -> list[str]:
    script = pathlib.Path(sys.executable).parent / "gradserve"
    return [str(script)] if script.exists() else [sys.executable, "-c",
                                                  "from gradserve.server._cli import main; main()"]


def test_demo_console_script_prints_the_seed_values():
    run = subprocess.run([*_console_script(), "demo"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONWARNINGS": "error::UserWarning"})
    assert run.returncode == 0, run.stderr
    out = run.stdout
    blocks = out.split("# input.requires_grad=")
    assert len(blocks) == 3, out
    without, with_ = blocks[1], blocks[2]
    for block in (without, with_):
        assert "loss: tensor(8., grad_fn=<MeanBackward0>)" in block
        assert "w1.grad: tensor(2.5000)" in block
        assert "w2.grad: tensor(1.)" in block
        for name in ("l1", "l2", "loss"):
            assert f"{name}.grad: None" in block
        assert "loss.grad_fn: MeanBackward0" in block
        assert "l2.grad_fn: AddBackward0" in block
        assert "l1.grad_fn: MulBackward0" in block
    assert "input.grad: None" in without
    assert "input.grad: tensor([[0.5000, 0.5000],\n        [0.5000, 0.5000]])" in with_


@pytest.mark.parametrize("requires", [False, True])
def test_demo_against_a_target(client, requires):
    lines = []
    got = _demo.run_seed(client, requires, out=lines.append)
    assert got["w1.grad"] == pytest.approx(2.5)
    assert got["w2.grad"] == pytest.approx(1.0)
    assert got["l1.grad"] is None and got["l2.grad"] is None and got["loss.grad"] is None
    if requires:
        assert (got["input.grad"] == 0.5).all() and got["input.grad"].shape == (2, 2)
    else:
        assert got["input.grad"] is None
