"""The examples run as a user runs them, in their fast modes: each starts its own
`gradserve serve` process on loopback and trains through it to the accuracy (or loss) its
docstring states for that mode."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import matplotlib  # noqa: F401  (in the test extra)
import sklearn  # noqa: F401  (in the test extra)
import tqdm  # noqa: F401  (in the test extra)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _console_script() -> list[str]:
    script = pathlib.Path(sys.executable).parent / "gradserve"
    return [str(script)] if script.exists() else [sys.executable, "-c",
                                                  "from gradserve.server._cli import main; main()"]


def test_gradserve_demo_train_trains_the_mlp_and_cnn_through_a_server(tmp_path):
    run = subprocess.run([*_console_script(), "demo", "--train", "--fast"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert run.returncode == 0, run.stderr[-3000:]
    found = dict(re.findall(r"\[(\w+)\] test accuracy: (0\.\d{3})", run.stdout))
    assert set(found) == {"mlp", "cnn"}, run.stdout
    # the fast mode's stated accuracies (3 epochs); the full run reaches >= 0.95 / >= 0.97
    assert float(found["mlp"]) >= 0.93, run.stdout
    assert float(found["cnn"]) >= 0.95, run.stdout
    assert (tmp_path / "digits_training.png").read_bytes()[:4] == b"\x89PNG"
    dot = (tmp_path / "digits_cnn_graph.dot").read_text()
    # it says what it wrote, and when Graphviz's `dot` is missing, that it is
    written = [line for line in run.stdout.splitlines() if "digits_cnn_graph" in line]
    assert len(written) == 1, run.stdout
    assert ("digits_cnn_graph.svg" in written[0]) == bool(shutil.which("dot")), written
    if not shutil.which("dot"):
        assert "Graphviz's `dot` is not on PATH" in written[0]
    assert dot.startswith("digraph backward {") and "ConvolutionBackward0" in dot
    assert "NativeBatchNormBackward0" in dot and "MaxPool2DWithIndicesBackward0" in dot


def test_char_transformer_loss_falls_below_its_fast_target():
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "char_transformer.py"),
                          "--fast"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    m = re.search(r"final loss ([\d.]+) after (\d+) steps .*target < ([\d.]+)", run.stdout)
    assert m, run.stdout
    assert float(m.group(1)) < float(m.group(3)) <= 2.5
    assert "sample:\n" in run.stdout and len(run.stdout.split("sample:\n")[1]) > 100


def test_char_transformer_help_describes_it_and_starts_nothing():
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "char_transformer.py"),
                          "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert "trained on The Zen of Python, on a gradserve server." in text  # not cut off
    assert "--target TARGET" in text and "(default: 600)" in text
    assert "started a gradserve server" not in run.stdout and run.stderr == ""
