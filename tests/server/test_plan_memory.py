"""A captured step's earlier runs, which the server keeps so that a backward reaching them
can be planned (server/_plan.py), count in the session's bytes and are let go before a
byte limit would refuse: a loop the eager server runs within its limit runs within it too."""

from __future__ import annotations

import gradserve as gs
import gradserve.nn as nn
import pytest
from gradserve.server import _chain as chain
from gradserve.server import _limits, create_server

MiB = 1 << 20


@pytest.fixture(scope="module")
def address():
    server, port = create_server("127.0.0.1:0", max_session_bytes=24 * MiB)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait()


def _deep(s):
    layers = [nn.Linear(128, 128, session=s)]
    for _ in range(30):  # ~90 ops a forward: the step comes as two batches, both captured
        layers += [nn.Tanh(), nn.Linear(128, 128, session=s)]
    return nn.Sequential(*layers)


def test_held_runs_go_before_the_session_limit_refuses(address):
    # forward passes in grad mode whose outputs are dropped (no backward): eager frees each
    # graph; the server's kept runs (32 KiB per op, 2 MiB a run, up to 32 runs) would hold
    # far more than the 24 MiB limit if they were not let go
    with gs.connect(address) as client, client.session() as s:
        model = _deep(s)
        x = s.randn(64, 128)
        for _ in range(25):
            out = model(x)
            assert out.sum().item() == out.sum().item()  # a value, each step
            del out
        assert s.info()["bytes"] <= 24 * MiB


def _kept_runs(s) -> int:
    for session in list(chain._CHAINS):
        if session.id == s.id:
            return len(chain.runs(session))
    return 0


def test_the_kept_runs_hold_no_bytes(address, monkeypatch):
    # the runs are kept by weak references (server/_chain.py): with nothing let go before a
    # limit, the same loop holds exactly the bytes the eager server holds, kept runs or not
    monkeypatch.setattr(_limits, "releasers", [])
    held = {}
    for plans in (True, False):
        with gs.connect(address) as client, client.session() as s:
            s._plans.enabled = plans
            model = _deep(s)
            x = s.randn(64, 128)
            for _ in range(25):
                model(x).sum().item()
            s.synchronize()
            held[plans] = s.info()["bytes"]
            runs = _kept_runs(s)
            assert runs > 0 if plans else runs == 0  # the replayed loop keeps its runs
    assert held[True] == held[False] < 2 * MiB


def test_a_graph_the_kept_runs_reach_lives_as_long_as_eagers(address):
    # the kept runs of a forward in batches do not keep its graph: once the client drops
    # the output (and a backward ran before), the session holds what it held before
    with gs.connect(address) as client, client.session() as s:
        model = _deep(s)
        x = s.randn(64, 128)
        for _ in range(4):
            model.zero_grad()
            model(x).sum().backward()
        s.synchronize()
        before = s.info()["bytes"]
        for _ in range(4):  # captured, then replayed: its runs are kept
            out = model(x)
            s.synchronize()
            assert s.info()["bytes"] > before
        assert _kept_runs(s) > 0
        del out
        s.synchronize()
        assert s.info()["bytes"] == before


def test_the_servers_limit_lets_the_kept_runs_go(monkeypatch):
    # under --max-server-bytes every session's kept runs go before a refusal (here a
    # second session's small tensor shares the server with the loop)
    server, port = create_server("127.0.0.1:0", max_server_bytes=12 * MiB)
    server.start()
    try:
        with gs.connect(f"127.0.0.1:{port}") as client:
            with client.session() as first, client.session() as second:
                model = _deep(first)
                x = first.randn(64, 128)
                small = second.ones(1000)
                for _ in range(25):  # kept runs alone would pass 12 MiB within 8 steps
                    model(x).sum().item()
                assert small.sum().item() == 1000.0
    finally:
        server.stop(0).wait()
