"""The compute budget (`--max-request-seconds`) holds inside one backward: the walk checks it
between nodes, so a backward through a long graph stops at the budget with
`gs.DeadlineExceededError` (not after the whole walk), and the session goes on.

The budget is of the clock (a request holds its slot that long), and this server runs in the
test's process: a request's wall time depends on the machine (a loaded CI box, a full GC of
this process, the GIL shared with the client), whatever it computes. So only the backward
under test runs under the budget; the requests that build the graph and check the session
afterwards run without one, and no assertion depends on how fast they are."""

from __future__ import annotations

import contextlib

import gradserve as gs
import numpy as np
import pytest
from gradserve.server import create_server

BUDGET = 0.2  # seconds
NODES = 2000  # each node's backward touches 1M floats: the walk takes several budgets


@pytest.fixture(scope="module")
def server():
    srv, port = create_server("127.0.0.1:0", max_request_seconds=BUDGET)
    srv.start()
    srv.address = f"127.0.0.1:{port}"
    yield srv
    srv.stop(0).wait()


@pytest.fixture(scope="module")
def tight(server):
    return server.address


@contextlib.contextmanager
def _unbudgeted(server):
    """Requests sent in the block (and waited for in it) run without the compute budget: the
    scheduler reads it when a request is queued."""
    scheduler = server.runtime.scheduler
    assert scheduler.budget == BUDGET  # the flag's value reached the scheduler
    scheduler.budget = None
    try:
        yield
    finally:
        scheduler.budget = BUDGET


def test_a_long_backward_stops_at_the_budget_and_the_session_goes_on(server):
    with gs.connect(server.address) as client, client.session() as s:
        with _unbudgeted(server):
            x = s.ones(1000, 1000, requires_grad=True)
            h = x
            for i in range(NODES):  # a scalar mul saves nothing: only nodes are kept
                h = h * (2.0 if i % 2 else 0.5)
                if i % 8 == 7:
                    s.synchronize()  # bounded requests: the stream holds few tensors
            loss = h.sum()
            s.synchronize()
        loss.backward()
        with pytest.raises(gs.DeadlineExceededError, match="--max-request-seconds") as info:
            s.synchronize()
        assert "backward" in str(info.value) and "between two nodes" in str(info.value)
        # the session goes on: new work runs, a fresh graph backpropagates
        with _unbudgeted(server):
            assert x.detach().sum().item() == 1_000_000.0
            w = s.tensor([1.0, 2.0, 3.0], requires_grad=True)
            (w * w).sum().backward()
            assert w.grad.tolist() == [2.0, 4.0, 6.0]


def test_a_short_backward_under_the_budget_is_untouched(tight):
    with gs.connect(tight) as client, client.session() as s:
        x = s.tensor(np.arange(6, dtype=np.float64).reshape(2, 3), requires_grad=True)
        h = x
        for _ in range(50):
            h = h * 1.5
        h.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 1.5 ** 50))



def test_the_budget_between_an_optimizer_steps_parameters_says_what_stopped():
    """The node check the scheduler gives the engine names an optimizer step's stop as such
    (an SGD or Adam step over many parameters is one op that checks between them)."""
    import time

    from gradserve.server._errors import DeadlineExceededError
    from gradserve.server._scheduler import _check_between, _local

    _local.deadline = (time.monotonic() - 1.0, BUDGET, "--max-request-seconds")
    try:
        with pytest.raises(DeadlineExceededError) as info:
            _check_between("optimizer step")
        assert str(info.value) == (
            "this request's optimizer step ran longer than its compute budget of 0.2 s "
            "(--max-request-seconds); it stopped between two parameters: those before were "
            "updated, the rest were not")
        with pytest.raises(DeadlineExceededError, match="between two nodes"):
            _check_between()
    finally:
        _local.deadline = None
