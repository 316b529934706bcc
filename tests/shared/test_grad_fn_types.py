"""grad_fn objects as torch shows them: `type(y.grad_fn).__name__` is the node's name
('MulBackward0', a leaf's 'AccumulateGrad') and `next_functions` leads through the same
nodes in the same order, on engine tensors and on a live session (whose client builds the
same nodes without data)."""

from __future__ import annotations

import gradserve as gs
import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)
W = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -0.1]], np.float32)

# graphs whose every node, edge and order agree with torch's
SAME_GRAPH = {
    "mul_add": lambda M, x, w: x * w + x,
    "matmul_t": lambda M, x, w: x @ w.t(),
    "sum_mean": lambda M, x, w: x.sum(0) + w.mean(0),
    "relu_exp": lambda M, x, w: x.relu() * w.exp(),
    "cat": lambda M, x, w: M.cat([x, w], 0),
    "stack": lambda M, x, w: M.stack([x, w]),
    "getitem": lambda M, x, w: x[0] * w[:, 1:].sum(),
    "sigmoid_tanh": lambda M, x, w: x.sigmoid() - w.tanh(),
    "log_softmax": lambda M, x, w: (x * w).log_softmax(1),
    "reshape": lambda M, x, w: x.reshape(3, 2) @ w[:, :2],
    "sub_neg": lambda M, x, w: -(x - w),
    "clamp": lambda M, x, w: x.clamp(-0.5, 0.5) * w,
    "max_dim": lambda M, x, w: (x * w).max(1)[0],
    "mse": lambda M, x, w: M.nn.functional.mse_loss(x, w),
    "transpose_expand": lambda M, x, w: x.transpose(0, 1).unsqueeze(0).expand(2, 3, 2).sum(0),
}
# graphs whose nodes' names agree but whose edges differ from torch's (gradserve keeps an
# edge per input, a non-tensor one as None; linear is one fused node)
SAME_NAME = {
    "where": lambda M, x, w: M.where(x > 0, x, w),
    "pow_div": lambda M, x, w: x ** 2 / (w + 3),
    "linear": lambda M, x, w: M.nn.functional.linear(x, w),
}


def _graph(fn):
    """(type name, (the same for each of next_functions)), None for a missing edge."""
    if fn is None:
        return None
    return type(fn).__name__, tuple(_graph(nxt) for nxt, _ in fn.next_functions)


def _both(M, scenario):
    ours = scenario(M, M.tensor(X, requires_grad=True), M.tensor(W, requires_grad=True))
    theirs = scenario(torch, torch.tensor(X, requires_grad=True),
                      torch.tensor(W, requires_grad=True))
    return ours.grad_fn, theirs.grad_fn


@pytest.mark.parametrize("name", sorted(SAME_GRAPH))
def test_the_graph_is_torchs(M, name):
    ours, theirs = _both(M, SAME_GRAPH[name])
    assert _graph(ours) == _graph(theirs)


@pytest.mark.parametrize("name", sorted({**SAME_GRAPH, **SAME_NAME}))
def test_grad_fn_type_names_are_torchs(M, name):
    ours, theirs = _both(M, {**SAME_GRAPH, **SAME_NAME}[name])
    assert type(ours).__name__ == type(theirs).__name__ == ours.name()
    assert repr(ours).startswith(f"<{type(theirs).__name__} object at 0x")


def test_a_leafs_accumulator_is_named_as_torchs(M):
    x = M.tensor(X, requires_grad=True)
    tx = torch.tensor(X, requires_grad=True)
    acc, nr = (x * 2).grad_fn.next_functions[0]
    tacc, tnr = (tx * 2).grad_fn.next_functions[0]
    assert type(acc).__name__ == type(tacc).__name__ == "AccumulateGrad" and nr == tnr == 0
    assert acc.variable is x


def test_one_class_per_name():
    # every MulBackward0 is of one class, and it is a Node (isinstance checks keep working)
    a, b = gs.tensor(1.0, requires_grad=True) * 2, gs.tensor(2.0, requires_grad=True) * 3
    assert type(a.grad_fn) is type(b.grad_fn)
    assert isinstance(a.grad_fn, gs.engine.seam.Node)
