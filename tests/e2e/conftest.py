"""End-to-end fixtures: a real gradserve server in this process on 127.0.0.1:0, a client
connected to it, and a fresh session per test; `serve` starts server processes."""

from __future__ import annotations

import queue
import threading

import gradserve as gs
import pytest
from gradserve.server import create_server


@pytest.fixture(scope="module")
def server():
    srv, port = create_server("127.0.0.1:0")
    srv.start()
    srv.address = f"127.0.0.1:{port}"
    yield srv
    srv.stop(0).wait()


@pytest.fixture(scope="module")
def client(server):
    c = gs.connect(server.address)
    yield c
    c.close()


@pytest.fixture
def s(client):
    with client.session() as session:
        yield session


class Served:
    """A `python -m gradserve.server` process on 127.0.0.1, started with `args`."""

    def __init__(self, *args: str, port: int = 0) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradserve.server", "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr),
                                        daemon=True)
        self._reader.start()
        line = _first_line(self.proc)
        assert line.startswith("gradserve listening on "), line + "".join(self.stderr)
        self.address = line.split()[3]
        self.port = int(self.address.rsplit(":", 1)[1])

    def events(self) -> list[dict]:
        import json

        return [json.loads(line) for line in list(self.stderr) if line.startswith("{")]

    def stop(self, timeout: float = 30) -> int:
        """Kill it unless it already ended; its exit code (its pipes read and closed)."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def _first_line(proc, timeout: float = 30.0) -> str:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        proc.kill()
        raise AssertionError("the server printed no address line") from None


@pytest.fixture
def serve():
    """serve(*args, port=0) -> Served: server processes, killed at the end of the test."""
    started: list[Served] = []

    def start(*args: str, port: int = 0) -> Served:
        started.append(Served(*args, port=port))
        return started[-1]

    yield start
    for served in started:
        served.stop()
