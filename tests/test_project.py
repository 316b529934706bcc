"""Project-level checks: packaging, generated stubs, proto lint."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _setuptools_config():
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_python_folder_is_a_declared_package():
    # setuptools silently leaves unlisted subpackages out of the wheel.
    cfg = _setuptools_config()
    declared = {(ROOT / path).resolve() for path in cfg["package-dir"].values()}
    assert set(cfg["packages"]) == set(cfg["package-dir"])
    for top in {p.parts[0] for p in map(pathlib.Path, cfg["package-dir"].values())}:
        for init in (ROOT / top).rglob("*.py"):
            if "__pycache__" in init.parts:
                continue
            assert init.parent.resolve() in declared, f"{init.parent} is not a declared package"


def _project_table():
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _floor(requirements, name):
    found = [r.split(">=", 1)[1] for r in requirements if re.fullmatch(rf"{name}>=[\w.]+", r)]
    assert len(found) == 1, f"expected one '{name}>=X' requirement, got {found}"
    return found[0]


def test_stub_generator_pin_and_runtime_floors_match_the_committed_stamps():
    """The stubs stamp the grpcio-tools (and its protoc) that made them, and refuse to import
    under an older runtime: the test extra pins that exact generator, and the runtime floors
    are the stamps, so neither a new grpcio-tools release nor an old grpcio breaks a clone."""
    project = _project_table()
    pins = [r for r in project["optional-dependencies"]["test"] if r.startswith("grpcio-tools")]
    assert len(pins) == 1 and "==" in pins[0], f"grpcio-tools must be pinned exactly: {pins}"
    tools = pins[0].split("==", 1)[1]
    stubs = ROOT / "proto" / "gradserve" / "v1"
    grpc_stamp = re.search(r"GRPC_GENERATED_VERSION = '([\w.]+)'",
                           (stubs / "gradserve_pb2_grpc.py").read_text()).group(1)
    protobuf_stamp = re.search(r"# Protobuf Python Version: ([\w.]+)",
                               (stubs / "gradserve_pb2.py").read_text()).group(1)
    deps = project["dependencies"]
    assert grpc_stamp == tools
    for name in ("grpcio", "grpcio-health-checking", "grpcio-reflection"):
        assert _floor(deps, name) == grpc_stamp, name
    assert _floor(deps, "protobuf") == protobuf_stamp


def test_generated_stubs_are_fresh(tmp_path):
    pytest.importorskip("grpc_tools")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    fresh = sorted(tmp_path.rglob("*_pb2*.py*"))
    assert fresh, "the generator produced nothing"
    for path in fresh:
        committed = ROOT / "proto" / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run python scripts/gen_proto.py"
        )


@pytest.mark.parametrize("args", [["lint"], ["format", "--exit-code", "-d"]])
def test_buf(args):
    buf = shutil.which("buf") or shutil.which("buf", path=str(pathlib.Path(sys.executable).parent))
    if buf is None:
        pytest.skip("buf (pip install buf-bin) is not installed")
    result = subprocess.run([buf, *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_gradserve_engine_stays_light():
    code = ("import sys, gradserve.engine; "
            "print(any(m == 'grpc' or m.startswith(('grpc.', 'cupy')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which(
        "ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_client_package_does_not_import_the_server():
    """The SDK talks to servers over the wire only; `gradserve serve/demo` is the server's."""
    import ast

    offenders = []
    for path in (ROOT / "client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                f"{node.module}.{a.name}" for a in node.names] if isinstance(
                node, ast.ImportFrom) and node.module else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.startswith("gradserve.server")]
    assert offenders == []


def test_no_source_module_is_over_500_lines():
    """One job per module: a module that grows past this holds several."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for folder in ("engine", "client", "server", "proto")
             for p in (ROOT / folder).rglob("*.py") if "_pb2" not in p.name}
    assert {p: n for p, n in sizes.items() if n > 500} == {}


def test_readme_lists_every_serve_option():
    from gradserve.server import _cli

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| option | default | what |"):]
    table = table[:table.index("\n\n")]
    listed = set(re.findall(r"`(--[a-z-]+)`", table))
    options = {a.option_strings[-1] for a in _cli._serve_parser("x")._actions
               if a.option_strings and a.dest not in ("help", "version")}
    assert listed == options


def test_the_op_table_in_wire_md_is_generated_from_the_registry():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_op_table.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cuda_extras_bring_cupy_and_nothing_else_needs_it():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["cuda12"]] == ["cupy-cuda12x"]
    assert [d.split(">")[0] for d in extras["cuda13"]] == ["cupy-cuda13x"]
    assert not any("cupy" in d for d in project["dependencies"])
    dockerfile = (ROOT / "deploy" / "Dockerfile.gpu").read_text()
    default = re.search(r"^ARG CUDA_EXTRA=(\S+)$", dockerfile, re.M).group(1)
    assert default in extras and '".[${CUDA_EXTRA}]"' in dockerfile
