"""The SDK never hangs (issue 14 item 6): a server that stops answering (a real server process
sent SIGSTOP) makes every call raise gs.ConnectionError(reason="unresponsive") within the
client's timeout; a refused connection fails at once; a malformed target says what a target
looks like; `gradserve demo` with a bad target prints one line."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import gradserve as gs
import numpy as np
import pytest

TIMEOUT = 2.0
SLACK = 2.5  # a loaded CI machine's scheduling, on top of the timeout itself

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unresponsive(call) -> float:
    started = time.monotonic()
    with pytest.raises(gs.ConnectionError) as info:
        call()
    took = time.monotonic() - started
    assert info.value.reason == "unresponsive", info.value
    assert "stopped answering" in str(info.value) or "no gradserve server" in str(
        info.value), info.value
    assert took < TIMEOUT + SLACK, took
    return took


def test_a_stopped_server_gives_unresponsive_within_the_timeout(serve):
    served = serve()
    client = gs.connect(served.address, timeout=TIMEOUT)
    s = client.session()
    other = client.session()
    x = s.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3).sum()
    big = other.ones(1 << 20)  # 4 MB: fetched over a Fetch stream
    assert y.item() == 9.0 and big.sum().item() == 1 << 20
    os.kill(served.proc.pid, signal.SIGSTOP)
    try:
        _unresponsive(lambda: (x * 2).sum().item())  # a Pipeline read
        _unresponsive(client.session)  # a unary call
        _unresponsive(other.info)
        _unresponsive(big.numpy)  # a server stream
        _unresponsive(lambda: other.tensor(np.ones(1 << 20, np.float32)))  # an Upload
        _unresponsive(lambda: other.ones(3).numpy())
        _unresponsive(lambda: gs.connect(served.address, timeout=TIMEOUT))
        started = time.monotonic()
        client.close()  # gives up on the server once, not once per session
        assert time.monotonic() - started < 2 * TIMEOUT + SLACK
    finally:
        os.kill(served.proc.pid, signal.SIGCONT)
        served.stop()


def test_a_busy_server_is_not_unresponsive(serve):
    served = serve()
    with gs.connect(served.address, timeout=0.5) as client, client.session() as s:
        x = s.randn(512, 512)
        y = x
        for _ in range(60):  # well over the timeout of compute, with no reply meanwhile
            y = (y @ x).tanh()
        assert y.sum().item() == y.sum().item()


def test_a_refused_connection_fails_at_once():
    target = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(gs.ConnectionError) as info:
        gs.connect(target)  # the default timeout is 10 s; refused must not wait for it
    assert time.monotonic() - started < 1.0
    assert info.value.reason == "unreachable" and target in str(info.value)


@pytest.mark.parametrize("target", ["http://127.0.0.1:50051", "grpc://host:1", "localhost",
                                    "127.0.0.1:", "host:port", "10.0.0.1:99999", "",
                                    "::1:50051", " 127.0.0.1:50051"])
def test_a_malformed_target_says_what_a_target_looks_like(target):
    started = time.monotonic()
    with pytest.raises(gs.ConnectionError) as info:
        gs.connect(target)
    assert time.monotonic() - started < 0.5
    assert info.value.reason == "bad_target"
    assert "a target looks like" in str(info.value) and '"host:port"' in str(info.value)


@pytest.mark.parametrize("target", ["127.0.0.1:1", "[::1]:1", "dns:///localhost:1",
                                    "unix:/tmp/gradserve-nothing.sock"])
def test_well_formed_targets_are_taken(target):
    with pytest.raises(gs.ConnectionError) as info:
        gs.connect(target, timeout=3)
    assert info.value.reason in ("unreachable", "unresponsive")


def test_demo_with_a_bad_target_prints_one_line(capsys):
    from gradserve.server._cli import main

    for target in ("bad", f"127.0.0.1:{_free_port()}"):
        assert main(["demo", "--target", target]) == 1
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1, (out, err)
        assert err.startswith("gradserve demo: ConnectionError: ") and "Traceback" not in err


def test_the_documented_default_timeout_is_the_one_used():
    import inspect

    from gradserve import _client

    assert inspect.signature(gs.connect).parameters["timeout"].default == 10.0
    assert _client.DEFAULT_TIMEOUT == 10.0
    assert inspect.signature(_client.connect).parameters["timeout"].default == 10.0
