"""What a program hears when its session or its server goes away, through real server
processes: each case has its own message and `reason` (API.md §3, docs/WIRE.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import gradserve as gs
import grpc
import numpy as np
import pytest
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1 import gradserve_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_closed_by_this_program_or_by_another(serve):
    srv = serve()
    with gs.connect(srv.address) as client:
        s = client.session()
        x = s.ones(2)
        s.close()
        with pytest.raises(gs.SessionLostError, match="closed by this program") as info:
            x.sum().item()
        assert info.value.reason == "closed"
        s2 = client.session()
        y = s2.ones(2)
        assert y.sum().item() == 2.0
        with gs.connect(srv.address) as other:
            other.attach(s2.id).close()
        with pytest.raises(gs.SessionLostError, match=f"session {s2.id} not found: it was "
                           "closed ") as info:
            (y * 2).sum().item()
        assert info.value.reason == "closed"


def test_reclaimed_after_its_ttl(serve):
    srv = serve("--session-ttl", "0.3")
    with gs.connect(srv.address) as client:
        s = client.session()
        x = s.ones(2)
        assert x.sum().item() == 2.0
        _until(lambda: any(e["event"] == "session.reaped" for e in srv.events()))
        with pytest.raises(gs.SessionLostError, match=r"reclaimed after its TTL \(idle longer "
                           r"than 0.3 s\)") as info:
            (x * 2).sum().item()
        assert info.value.reason == "reclaimed"


def test_server_restarted(serve):
    srv = serve()
    with gs.connect(srv.address) as client:
        s = client.session()
        x = s.ones(2)
        first = s.info()["instance_id"]
        srv.stop()  # SIGKILL: the session dies with the process
        again = serve(port=srv.port)
        with pytest.raises(gs.SessionLostError, match="the server restarted") as info:
            (x * 2).sum().item()
        assert info.value.reason == "restarted"
        assert first in str(info.value) and info.value.instance not in (None, first)
        assert client.session().info()["instance_id"] == info.value.instance  # a new session
        again.stop()


def test_server_unreachable(serve):
    srv = serve()
    with gs.connect(srv.address) as client:
        s = client.session()
        x = s.ones(2)
        assert x.sum().item() == 2.0
        srv.stop()
        with pytest.raises(gs.ConnectionError, match=f"no gradserve server answers at "
                           f"{srv.address}") as info:
            (x * 2).sum().item()
        assert info.value.reason == "unreachable"


def test_server_draining(serve):
    """SIGTERM without --state-dir: the session's calls hear that the server drains while a
    running call (a Fetch read one chunk at a time) keeps it up."""
    srv = serve("--drain-grace", "20")
    with gs.connect(srv.address) as client:
        holder = client.session()
        big = holder.from_numpy(np.ones(16 << 20, dtype=np.bool_))  # through Upload
        holder.synchronize()
        s = client.session()
        y = s.ones(2)
        assert y.sum().item() == 2.0
        channel = grpc.insecure_channel(srv.address)
        fetch = pb_grpc.GradserveServiceStub(channel).Fetch(pb.FetchRequest(
            session_id=holder.id, ids=[big.id], encoding=pb.ENCODING_RAW))
        got = len(next(fetch).tensor.raw)
        srv.proc.send_signal(signal.SIGTERM)
        health = health_pb2_grpc.HealthStub(channel)
        _until(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
               == health_pb2.HealthCheckResponse.NOT_SERVING)
        with pytest.raises(gs.ConnectionError, match="draining") as info:
            (y * 2).sum().item()
        assert info.value.reason == "draining"
        got += sum(len(m.tensor.raw) for m in fetch)  # the running call finishes
        assert got == 16 << 20
        channel.close()
    assert srv.proc.wait(timeout=30) == 0


def test_a_port_in_use_is_one_clear_line(serve):
    srv = serve()
    run = subprocess.run([sys.executable, "-m", "gradserve.server", "--port", str(srv.port)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr == (f"python -m gradserve.server: error: port {srv.port} on 127.0.0.1 is "
                          "already in use (another gradserve server?); choose another with "
                          "--port, or --port 0 for a free one\n")
    run = subprocess.run([sys.executable, "-m", "gradserve.server", "--port", "0",
                          "--metrics-port", str(srv.port)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "choose another with --metrics-port" in run.stderr
    assert "add_port" not in run.stderr and run.stderr.count("\n") == 1


def test_unknown_ops_suggest_the_closest(s):
    with pytest.raises(gs.InvalidArgumentError, match=r"unknown op 'mull' \(did you mean "
                       r"'mul'\?\)"):
        s._send("mull", (s.ones(2), s.ones(2)), ("o",), {})
        s.synchronize()
