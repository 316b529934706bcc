"""The compute budget (`--max-request-seconds`) holds inside one backward: the walk checks it
between nodes, so a backward through a long graph stops at the budget with
`gs.DeadlineExceededError` (not after the whole walk), and the session goes on."""

from __future__ import annotations

import gradserve as gs
import numpy as np
import pytest
from gradserve.server import create_server

BUDGET = 0.2  # seconds
NODES = 2000  # each node's backward touches 1M floats: the walk takes several budgets


@pytest.fixture(scope="module")
def tight():
    srv, port = create_server("127.0.0.1:0", max_request_seconds=BUDGET)
    srv.start()
    yield f"127.0.0.1:{port}"
    srv.stop(0).wait()


def test_a_long_backward_stops_at_the_budget_and_the_session_goes_on(tight):
    with gs.connect(tight) as client, client.session() as s:
        x = s.ones(1000, 1000, requires_grad=True)
        h = x
        for i in range(NODES):  # a scalar mul saves nothing: only nodes are kept
            h = h * (2.0 if i % 2 else 0.5)
            if i % 8 == 7:
                s.synchronize()  # every forward request stays far under the budget
        loss = h.sum()
        s.synchronize()
        loss.backward()
        with pytest.raises(gs.DeadlineExceededError, match="--max-request-seconds") as info:
            s.synchronize()
        assert "backward" in str(info.value) and "between two nodes" in str(info.value)
        # the session goes on: new work runs, a fresh graph backpropagates
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

