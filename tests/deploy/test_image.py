"""deploy/Dockerfile built and run with podman, on loopback only.

Podman is not a pip package: where it is absent (as in CI) this test skips and says so.
Everything follows ../shared/notes/containers-here.md: storage and configuration under the
test's temporary folder, host networking (never bridge networking), a base image made with
debootstrap when none is given (GRADSERVE_TEST_BASE_IMAGE names one), and the wheels built
here beforehand, because pip inside a build cannot verify certificates on these machines.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import shutil
import socket
import subprocess
import sys

import gradserve as gs
import pytest

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE = "localhost/gradserve:test"
BASE = "localhost/gradserve-test-base:latest"
CONTEXT = ["pyproject.toml", "README.md", "client", "engine", "server", "proto"]


class Podman:
    """podman with its storage and configuration in `root`."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        (root / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\nrunroot = "{root}/run"\n'
            f'graphroot = "{root}/storage"\n')
        (root / "containers.conf").write_text(
            '[containers]\nnetns = "host"\n'
            'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{root}/events.log"\nruntime = "runc"\n')
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
                    "CONTAINERS_CONF": str(root / "containers.conf")}

    def __call__(self, *args: str, check: bool = True, timeout: float = 300,
                 **kwargs) -> subprocess.CompletedProcess:
        out = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, **kwargs)
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {out.returncode}\n"
                                 f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out


def _base_image(podman: Podman, workdir: pathlib.Path) -> str:
    given = os.environ.get("GRADSERVE_TEST_BASE_IMAGE")
    if given:
        return given
    if shutil.which("debootstrap") is None:
        pytest.skip("no base image: set GRADSERVE_TEST_BASE_IMAGE, or install debootstrap")
    rootfs = workdir / "rootfs"
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv",
                    "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                   check=True, capture_output=True, timeout=600)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    podman("import", "-", BASE, stdin=tar.stdout)
    assert tar.wait(timeout=60) == 0
    return BASE


def _wheels(podman: Podman, base: str, into: pathlib.Path) -> None:
    """gradserve's wheel and binary wheels of its dependencies (and of what builds it) for
    the base image's Python."""
    tomllib = pytest.importorskip("tomllib")
    version = podman("run", "--rm", "--entrypoint", "python3", base, "-c",
                     "import sys; print('%d.%d' % sys.version_info[:2])").stdout.strip()
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "download", "--quiet", "--only-binary=:all:", "--dest", str(into),
                    "--python-version", version, "--implementation", "cp",
                    "--platform", f"manylinux2014_{platform.machine()}",
                    "--platform", f"manylinux_2_28_{platform.machine()}",
                    *requirements, "setuptools>=68", "wheel"],
                   check=True, capture_output=True, timeout=600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def podman(tmp_path):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (not a pip package; CI has none): "
                    "apt-get install podman buildah runc debootstrap to run this test")
    tool = Podman(tmp_path)
    yield tool
    tool("rm", "--all", "--force", check=False)
    tool("rmi", "--all", "--force", check=False)


def test_the_cpu_image_serves_the_seed_example_and_answers_health_checks(
        podman, tmp_path, helpers):
    base = _base_image(podman, tmp_path)
    context = tmp_path / "context"
    context.mkdir()
    for name in CONTEXT:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, context / name)
    _wheels(podman, base, context / "wheels")
    podman("build", "--isolation", "chroot", "--network", "host", "--format", "docker",
           "--build-arg", f"BASE={base}",
           "--build-arg", "PIP_OPTIONS=--no-index --find-links /src/wheels",
           "-t", IMAGE, "-f", str(ROOT / "deploy" / "Dockerfile"), str(context), timeout=900)

    import gradserve

    assert podman("run", "--rm", IMAGE, "--version").stdout == (
        f"gradserve {gradserve.__version__}\n")
    image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    assert image["Config"]["User"] == "10001:10001"
    assert image["Healthcheck"]["Test"] == ["CMD", "gradserve", "health"]

    # Host networking, so the server's own --host keeps it on loopback (the image's
    # default, 0.0.0.0, is for a container with a network of its own).
    port = _free_port()
    podman("run", "--detach", "--name", "gradserve-test", "--env", f"GRADSERVE_PORT={port}",
           IMAGE, "serve", "--host", "127.0.0.1")
    address = f"127.0.0.1:{port}"
    helpers.wait_for("the server's address line", lambda: "gradserve listening on "
                     f"{address}" in podman("logs", "gradserve-test").stdout, timeout=60)

    out = subprocess.run(
        [helpers.tool("grpcurl"), "-plaintext", "-d",
         '{"service": "gradserve.v1.GradserveService"}', address,
         "grpc.health.v1.Health/Check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}
    assert podman("healthcheck", "run", "gradserve-test").returncode == 0  # the HEALTHCHECK

    with gs.connect(address) as client, client.session(device="cpu") as s:
        input = s.tensor([[1., 2.], [3., 4.]], requires_grad=False)
        w1 = s.tensor(2.0, requires_grad=True)
        w2 = s.tensor(3.0, requires_grad=True)
        loss = (input * w1 + w2).mean()
        loss.backward()
        assert (w1.grad.item(), w2.grad.item(), input.grad) == (2.5, 1.0, None)
        assert loss.grad_fn.name() == "MeanBackward0"

    # SIGTERM reaches the server as PID 1: it drains and exits 0 (podman's SIGKILL after
    # the 30 s would show as 137).
    podman("stop", "--time", "30", "gradserve-test", timeout=60)
    state = json.loads(podman("inspect", "gradserve-test").stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
    assert '"event": "server.stopped"' in podman("logs", "gradserve-test").stderr
