"""Ordinary PyTorch scripts (examples/pytorch/) run with the word `torch` replaced by
`gradserve`: in-process, and inside a session of a real server (the script is run inside
`with client.session():`, nothing else changed). Both print what torch prints (with torch's
name replaced too), numbers equal to 4 significant digits; when torch is not installed the
two gradserve runs are compared with each other. A seeded script (its data, initial weights
and shuffles from torch's generator) prints exactly torch's text (API.md §8).
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import gradserve as gs
import pytest

SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "pytorch"
NAMES = ["heat", "fit_sgd", "conv_net", "lstm", "seeded_fit", "decoder_linalg",
         "loader_regression", "lbfgs_fit", "cell_loop", "transformer_seq2seq",
         "conv_autoencoder"]
SEEDED = ["seeded_fit"]  # draw from torch's generator: the same numbers, digit for digit
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:e[-+]?\d+)?")


def ported(source: str) -> str:
    """The one change a user makes: the word torch becomes gradserve."""
    return re.sub(r"\btorch\b", "gradserve", source)


def run(source: str, name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, f"{name}.py", "exec"), {"__name__": "__main__"})
    return out.getvalue()


def same_output(ours: str, theirs: str) -> None:
    """Equal text; numbers equal to about 4 significant digits (what they print)."""
    assert NUMBER.sub("#", ours) == NUMBER.sub("#", theirs), f"{ours}\n---\n{theirs}"
    for a, b in zip(NUMBER.findall(ours), NUMBER.findall(theirs), strict=True):
        x, y = float(a), float(b)
        assert abs(x - y) <= 2e-4 * max(1.0, abs(y)), f"{a} != {b}\n{ours}\n---\n{theirs}"


@pytest.mark.parametrize("name", NAMES)
def test_a_torch_script_runs_with_one_word_changed(name, client):
    source = (SCRIPTS / f"{name}.py").read_text()
    assert "gradserve" not in source  # an ordinary torch script
    in_process = run(ported(source), name)
    with client.session() as s:
        remote = run(ported(source), name)
        assert s.stats.ops > 0  # its tensors were the session's
    same_output(remote, in_process)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)  # small tensors: torch's thread pool only adds overhead here
    same_output(in_process, run(source, name).replace("torch", "gradserve"))


@pytest.mark.parametrize("name", SEEDED)
def test_a_seeded_script_prints_torchs_text(name, client):

    source = (SCRIPTS / f"{name}.py").read_text()
    assert "manual_seed" in source
    theirs = run(source, name).replace("torch", "gradserve")
    assert run(ported(source), name) == theirs
    with client.session():
        assert run(ported(source), name) == theirs


def test_ported_tensors_are_remote_inside_a_session(client):
    with client.session() as s:
        env = {"__name__": "__main__"}
        exec(ported("import torch\nx = torch.linspace(0, 1, 5)\n"), env)
        assert isinstance(env["x"], gs.RemoteTensor) and env["x"].session is s
