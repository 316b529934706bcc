"""The README's "Coming from PyTorch" side-by-side, run for real: the torch block with torch
(when installed), the gradserve block against a real server, and the output the README
states for both."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import gradserve as gs
from gradserve import _client

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    found = re.search(r"^## Coming from PyTorch\n(.*?)(?=^## )", text, re.S | re.M)
    assert found, "README.md has no '## Coming from PyTorch' section"
    return found.group(1)


def _blocks() -> tuple[str, str]:
    torch_src, gs_src = re.findall(r"^```python\n(.*?)^```$", _section(), re.S | re.M)[:2]
    assert "import torch" in torch_src and "import gradserve as gs" in gs_src
    return torch_src, gs_src


def _run(source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "README.md", "exec"), {"__name__": "__main__"})
    return out.getvalue()


def _stated() -> str:
    said = re.search(r"Both print `(.*?)` and then\n?`(.*?)`", _section(), re.S)
    return said.group(1).replace("\n", " ") + "\n" + said.group(2).replace("\n", " ") + "\n"


def test_side_by_side(server, monkeypatch):
    torch_src, gs_src = _blocks()
    real_connect = _client.connect
    monkeypatch.setattr(_client, "connect",
                        lambda target=None, **kw: real_connect(server.address, **kw))
    ours = _run(gs_src)
    assert ours == _stated()
    assert gs.current_session() is None  # the block's session ended with it
    import torch  # noqa: F401  (the oracle; in the test extra)
    assert _run(torch_src) == ours


def test_the_gradserve_block_is_the_torch_block_with_one_word_changed():
    torch_src, gs_src = _blocks()
    body = [line for line in torch_src.splitlines()[1:] if line]
    ported = [line.strip() for line in gs_src.splitlines()[2:] if line]
    assert [re.sub(r"\btorch\b", "gs", line) for line in body] == ported[1:]
