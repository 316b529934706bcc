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
        self._read = threading.Condition()  # notified at each line read, and at the end
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        line = _first_line(self.proc)
        assert line.startswith("gradserve listening on "), line + "".join(self.stderr)
        self.address = line.split()[3]
        self.port = int(self.address.rsplit(":", 1)[1])

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            with self._read:
                self.stderr.append(line)
                self._read.notify_all()
        with self._read:
            self._read.notify_all()

    def events(self) -> list[dict]:
        """The JSON events read so far (a line the server wrote may not be read yet: see
        `event` and `wait`)."""
        import json

        return [json.loads(line) for line in list(self.stderr) if line.startswith("{")]

    def event(self, name: str, timeout: float = 30) -> dict:
        """The first event `name` the server logged, waiting for it to be read."""
        with self._read:
            if not self._read.wait_for(lambda: any(e["event"] == name for e in self.events())
                                       or not self._reader.is_alive(), timeout):
                raise AssertionError(f"no {name} event within {timeout} s")
        found = [e for e in self.events() if e["event"] == name]
        assert found, f"the server ended without a {name} event: {''.join(self.stderr)}"
        return found[0]

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to end on its own; its exit code, once all it wrote to stderr
        was read (so `events` holds its last events)."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        assert not self._reader.is_alive(), "the server's stderr never ended"
        return code

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
