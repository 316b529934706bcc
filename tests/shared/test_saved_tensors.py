"""Saved tensors as torch saves them (API.md section 7): an op keeps an input only when a
gradient that is needed reads it, so an in-place change after the op raises exactly when
torch's does, with torch's message. Every binary op, every combination of which operands
need a gradient, every operand modified: raise or not, message and gradients against torch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch  # the oracle

A = np.array([1.5, 2.0, 2.5], np.float32)
B = np.array([0.5, 1.25, 3.0], np.float32)
MA = np.array([[1.5, 2.0, 2.5], [0.5, -1.0, 0.75]], np.float32)
MB = np.array([[0.5, 1.0], [-1.25, 2.0], [3.0, 0.25]], np.float32)

# name -> (fn(L, a, b), a's values, b's values); b None: a number, not a tensor
BINARY = {
    "add": (lambda L, a, b: a + b, A, B),
    "sub": (lambda L, a, b: a - b, A, B),
    "mul": (lambda L, a, b: a * b, A, B),
    "div": (lambda L, a, b: a / b, A, B),
    "pow": (lambda L, a, b: a ** b, A, B),
    "matmul": (lambda L, a, b: a @ b, MA, MB),
    "mv": (lambda L, a, b: a @ b, MA, A),
    "dot": (lambda L, a, b: a @ b, A, B),
    "atan2": (lambda L, a, b: L.atan2(a, b), A, B),
    "maximum": (lambda L, a, b: L.maximum(a, b), A, B),
    "minimum": (lambda L, a, b: L.minimum(a, b), A, B),
    "remainder": (lambda L, a, b: L.remainder(a, b), A, B),
    "fmod": (lambda L, a, b: L.fmod(a, b), A, B),
    "lerp": (lambda L, a, b: L.lerp(a, b, 0.25), A, B),
    "lerp_weight": (lambda L, a, b: L.lerp(a, a.detach() * 2, b), A, B),
    "where": (lambda L, a, b: L.where(a > 2, a, b), A, B),
    "linear": (LINEAR := lambda L, a, b: L.nn.functional.linear(a, b.T), MA, MB),
    "mse": (lambda L, a, b: L.nn.functional.mse_loss(a, b), A, B),
}
SCALAR = {  # one tensor operand and a number
    "mul_number": lambda L, a: a * 2.0,
    "number_mul": lambda L, a: 3.0 * a,
    "div_number": lambda L, a: a / 4.0,
    "number_div": lambda L, a: 2.0 / a,
    "pow_number": lambda L, a: a ** 2.5,
    "number_pow": lambda L, a: 2.0 ** a,
    "sub_number": lambda L, a: 1.0 - a,
    "lerp_number": lambda L, a: L.lerp(a, a.detach(), 0.5),
    "clamp": lambda L, a: a.clamp(0.0, 2.0),
    "exp": lambda L, a: a.exp(),
    "sigmoid": lambda L, a: a.sigmoid(),
    "sqrt": lambda L, a: a.sqrt(),
    "log": lambda L, a: a.log(),
    "max_dim": lambda L, a: a.max(0).values,
    "min_dim": lambda L, a: a.min(0).values,
    "gather": lambda L, a: a.gather(0, L.tensor([2, 0])),
    "index_select": lambda L, a: a.index_select(0, L.tensor([2, 0])),
    "softmax": lambda L, a: a.softmax(0),
    "relu": lambda L, a: a.relu(),
    "gelu": lambda L, a: L.nn.functional.gelu(a),
    "sort": lambda L, a: a.sort().values,
    "mse": lambda L, a: L.nn.functional.mse_loss(a, L.ones(3)),
    "layer_norm": lambda L, a: L.nn.functional.layer_norm(a, (3,)),
    "masked_fill": lambda L, a: a.masked_fill(L.tensor([True, False, True]), 0.0),
}


def _run(L, fn, values, grads, modified):
    """Leaves for `values` (requiring grad as `grads` says), non-leaf copies the op reads,
    the op, an in-place change to copy `modified` (None: none), then backward."""
    leaves = [L.tensor(v, requires_grad=g) for v, g in zip(values, grads, strict=True)]
    operands = [x * 1.0 if g else x.clone() for x, g in zip(leaves, grads, strict=True)]
    out = fn(L, *operands)
    if modified is not None:
        with L.no_grad() if not grads[modified] else _nothing():
            operands[modified].add_(1.0)
    try:
        out.sum().backward()
    except RuntimeError as e:
        return ("raises", str(e).replace("torch.", "gradserve."))
    return ("runs", [None if x.grad is None else x.grad.tolist() for x in leaves])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _compare(M, fn, values, grads, modified):
    ours, theirs = _run(M, fn, values, grads, modified), _run(torch, fn, values, grads, modified)
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "raises":
        assert ours[1] == theirs[1] or fn is LINEAR  # torch keeps weight.t(): another shape
    else:
        for g, h in zip(ours[1], theirs[1], strict=True):
            assert (g is None) == (h is None)
            if g is not None:
                np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_save_what_torch_saves(M, name):
    fn, a, b = BINARY[name]
    for grads in ((True, False), (False, True), (True, True)):
        for modified in (None, 0, 1):
            _compare(M, fn, (a, b), grads, modified)


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_ops_with_a_number_save_what_torch_saves(M, name):
    for modified in (None, 0):
        _compare(M, SCALAR[name], (A,), (True,), modified)


def test_the_issue_program_runs(M):
    """The differentiable-physics stop from issue 16, as torch runs it."""
    a = M.ones(3, requires_grad=True)
    v = a * 1.0
    b = v * 2.0
    v.add_(1)
    b.sum().backward()
    assert a.grad.tolist() == [2.0, 2.0, 2.0]


def test_inplace_ops_save_what_torch_saves(M):
    """`v.mul_(c)`: the old v is kept only when c needs a gradient."""
    def scenario(L, c_grad, modify):
        a = L.tensor(A, requires_grad=True)
        c0 = L.tensor(B, requires_grad=c_grad)
        c = c0 * 1.0 if c_grad else c0.clone()
        v = a * 1.0
        v.mul_(c)
        if modify:
            c.add_(1.0)
        try:
            v.sum().backward()
        except RuntimeError as e:
            return str(e).replace("torch.", "gradserve.")
        return a.grad.tolist()

    for c_grad, modify in itertools.product((False, True), (False, True)):
        assert scenario(M, c_grad, modify) == scenario(torch, c_grad, modify)


def test_a_node_that_kept_nothing_runs_twice(M):
    """torch frees only what a node saved: remainder's self-gradient reads nothing."""
    for L in (M, torch):
        a = L.tensor(A, requires_grad=True)
        y = L.remainder(a, L.tensor(B))
        y.sum().backward()
        y.sum().backward()
        assert a.grad.tolist() == [2.0, 2.0, 2.0]


def test_graph_descriptions_list_what_was_kept(M):
    """gs.viz.graph's `saved` lists (DescribeGraph remotely) follow the same selection."""
    a = M.ones(3, requires_grad=True)
    v = a * 1.0

    def saved_of(t):
        nodes = M.viz.graph(t).to_dict()["nodes"]
        return [len(n.get("saved", [])) for n in nodes if n["name"] == "MulBackward0"][0]

    assert saved_of(v * 2.0) == 0  # 2.0 is a number; v is not needed
    assert saved_of(v * M.ones(3)) == 1  # the constant only
    assert saved_of(v * (a * 3.0)) == 2


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_keeps_the_log_softmax_not_its_input(M, reduction):
    """torch's cross_entropy is log_softmax then nll_loss: it keeps the log-probabilities, so
    changing the logits in place afterwards is no error (nll_loss keeps its input: changing
    that raises)."""
    def scenario(L, loss, modify):
        a = L.tensor(MA, requires_grad=True)
        logits = a * 1.0
        target = L.tensor([2, -100 if reduction == "mean" else 0])
        out = loss(L, logits, target)
        if modify:
            logits.add_(1.0)
        try:
            out.sum().backward()
        except RuntimeError as e:
            return str(e).replace("torch.", "gradserve.")
        names = [type(out.grad_fn).__name__,
                 type(out.grad_fn.next_functions[0][0]).__name__]
        return names, [[round(g, 6) for g in row] for row in a.grad.tolist()]

    def ce(L, x, t):
        return L.nn.functional.cross_entropy(x, t, reduction=reduction)

    def nll(L, x, t):
        return L.nn.functional.nll_loss(x, t, reduction=reduction)

    for loss, modify in itertools.product((ce, nll), (False, True)):
        assert scenario(M, loss, modify) == scenario(torch, loss, modify)
