"""What torch's samplers and fills record: a node of torch's name with a zero gradient.

Filling a tensor in the graph (`y.normal_()`, `y.fill_(1)`, `y.bernoulli_(p)`, `y.random_()`)
records `NormalBackward0`, `FillBackward2`, `BernoulliBackward1`, `RandomBackward2` ... whose
gradient is `zeros_like(grad)`: what came before gets 0, never NaN, even from an infinite
gradient. `normal(mean, std)` with tensor parameters, `bernoulli(p)` and `poisson(rates)`
record a zero gradient to their parameters (the draws are not reparameterised); the values
are the same draws as before. torch is the oracle, on engine tensors and in a live session
(`M`); values of the draws are checked against torch by tests/shared/test_random_streams.py.
"""

from __future__ import annotations

import math

import pytest
import torch  # the oracle

INF = math.inf

FILLS = {
    "uniform_": lambda L, y: y.uniform_(),
    "normal_": lambda L, y: y.normal_(),
    "exponential_": lambda L, y: y.exponential_(),
    "geometric_": lambda L, y: y.geometric_(0.5),
    "cauchy_": lambda L, y: y.cauchy_(),
    "log_normal_": lambda L, y: y.log_normal_(),
    "bernoulli_float": lambda L, y: y.bernoulli_(0.5),
    "bernoulli_tensor": lambda L, y: y.bernoulli_(L.full((3,), 0.5)),
    "random_": lambda L, y: y.random_(),
    "random_to": lambda L, y: y.random_(5),
    "random_to_keyword": lambda L, y: y.random_(to=5),
    "random_from_to": lambda L, y: y.random_(0, 5),
    "fill_number": lambda L, y: y.fill_(1.0),
    "fill_tensor": lambda L, y: y.fill_(L.tensor(1.0)),
    "zero_": lambda L, y: y.zero_(),
    "copy_": lambda L, y: y.copy_(L.zeros(3)),
    "through_a_view": lambda L, y: y[1:].normal_(),
}


def _fill_in_graph(L, fill, upstream):
    x = L.ones(3, dtype=L.float64, requires_grad=True)
    y = x * 2
    FILLS[fill](L, y)
    chain = [type(y.grad_fn).__name__]
    fn = y.grad_fn
    while fn is not None and fn.next_functions:
        fn = fn.next_functions[0][0]
        chain.append(type(fn).__name__)
    (y * upstream).sum().backward()
    return chain, x.grad.tolist(), y.requires_grad


@pytest.mark.parametrize("upstream", [3.0, INF], ids=["finite", "infinite"])
@pytest.mark.parametrize("fill", sorted(FILLS))
def test_a_fill_in_the_graph_records_torchs_node_and_a_zero_gradient(M, fill, upstream):
    ours = _fill_in_graph(M, fill, upstream)
    theirs = _fill_in_graph(torch, fill, upstream)
    assert ours == theirs
    assert ours[1] == [0.0, 0.0, 0.0] or fill == "through_a_view"


@pytest.mark.parametrize("fill", ["normal_", "uniform_", "bernoulli_float", "random_"])
def test_a_fill_on_a_leaf_that_requires_grad_is_torchs_error(M, fill):
    def run(L):
        x = L.ones(3, requires_grad=True)
        with pytest.raises(Exception) as info:
            FILLS[fill](L, x)
        return str(info.value)

    assert run(M) == run(torch)


def test_a_fill_under_no_grad_keeps_the_history(M):
    def run(L):
        x = L.ones(3, requires_grad=True)
        y = x * 2
        with L.no_grad():
            y.normal_()
        (y * 1.0).sum().backward()
        return type(y.grad_fn).__name__, x.grad.tolist()

    assert run(M) == run(torch) == ("MulBackward0", [2.0, 2.0, 2.0])


def test_a_probability_tensor_that_requires_grad_gets_a_zero_gradient(M):
    def run(L):
        x = L.ones(3, requires_grad=True)
        p = L.full((3,), 0.5, requires_grad=True)
        y = x * 2
        y.bernoulli_(p)
        y.sum().backward()
        return [type(fn).__name__ for fn, _ in y.grad_fn.next_functions], x.grad.tolist(), \
            p.grad.tolist()

    assert run(M) == run(torch)


SAMPLERS = {
    "normal_tensor_tensor": lambda L, a, b: L.normal(a, b),
    "normal_tensor_float": lambda L, a, b: L.normal(a, 1.0),
    "normal_float_tensor": lambda L, a, b: L.normal(0.0, b),
    "normal_broadcast": lambda L, a, b: L.normal(a.reshape(3, 1), b),
    "bernoulli": lambda L, a, b: L.bernoulli(b * 0.25),
    "bernoulli_method": lambda L, a, b: (b * 0.25).bernoulli(),
    "poisson": lambda L, a, b: L.poisson(b),
}


def _sampled(L, sampler, upstream):
    L.manual_seed(3)
    a = L.ones(3, dtype=L.float64, requires_grad=True)
    b = L.full((3,), 2.0, dtype=L.float64, requires_grad=True)
    out = SAMPLERS[sampler](L, a, b)
    edges = [None if fn is None else type(fn).__name__ for fn, _ in out.grad_fn.next_functions]
    (out * upstream).sum().backward()
    grads = [None if t.grad is None else t.grad.tolist() for t in (a, b)]
    return type(out.grad_fn).__name__, edges, out.requires_grad, tuple(out.shape), grads


@pytest.mark.parametrize("upstream", [3.0, INF], ids=["finite", "infinite"])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_a_sampler_gives_its_parameters_torchs_zero_gradient(M, sampler, upstream):
    ours = _sampled(M, sampler, upstream)
    theirs = _sampled(torch, sampler, upstream)
    assert ours == theirs


def test_sampled_values_are_unchanged_by_the_node(M):
    """The node only wraps the draws: a parameter that requires grad or not, the same numbers
    (and torch's, for normal with tensor parameters)."""
    def draws(L, requires_grad):
        L.manual_seed(5)
        mean = L.tensor([0.0, 1.0, 2.0], dtype=L.float64, requires_grad=requires_grad)
        std = L.tensor([1.0, 0.5, 2.0], dtype=L.float64, requires_grad=requires_grad)
        return [L.normal(mean, std).tolist(), L.normal(mean, 0.5).tolist(),
                L.normal(0.5, std).tolist()]

    ours = draws(M, True)
    assert ours == draws(M, False)
    for mine, torchs in zip(ours, draws(torch, True), strict=True):
        assert mine == pytest.approx(torchs, rel=1e-12)


def test_the_zero_gradient_has_no_graph_under_create_graph(M):
    def run(L):
        x = L.ones(3, requires_grad=True)
        y = x * 2
        y.normal_()
        (g,) = L.autograd.grad(y.sum(), x, create_graph=True)
        m = L.ones(3, requires_grad=True)
        (gm,) = L.autograd.grad(L.normal(m, 1.0).sum(), m, create_graph=True)
        return g.tolist(), g.requires_grad, g.grad_fn, gm.tolist(), gm.requires_grad

    assert run(M) == run(torch)


NORMS = {
    "norm_p0": lambda L, x: x.norm(p=0),
    "vector_norm_ord0": lambda L, x: L.linalg.vector_norm(x, 0),
    "vector_norm_ord0_dim": lambda L, x: L.linalg.vector_norm(x.reshape(3, 1), 0, dim=1),
    "pow_0": lambda L, x: (x ** 0).sum(),
    "cdist_p0": lambda L, x: L.cdist(x.reshape(1, 3), (x * 3).reshape(1, 3), p=0).sum(),
}


@pytest.mark.parametrize("case", sorted(NORMS))
def test_flat_functions_give_torchs_zero_or_no_gradient(M, case):
    """Functions that are flat in x: torch's zeros (not `g * 0`, NaN from an infinite g) or,
    for the count of nonzeros, no gradient at all."""
    def run(L):
        x = L.tensor([1.0, 0.0, -2.0], dtype=L.float64, requires_grad=True)
        out = NORMS[case](L, x)
        (out * INF).sum().backward()
        return type(out.grad_fn).__name__, None if x.grad is None else x.grad.tolist()

    assert run(M) == run(torch)


def test_sampled_is_refused_with_a_clear_error_on_bad_arguments(ns):
    """The op the samplers record through checks what it is given (it crosses the wire)."""
    x = ns.ones(3)
    with pytest.raises(ns.InvalidArgumentError, match="node must be one of"):
        x._op("sampled", x, x, node="MulBackward0")
        ns.sync()
    with pytest.raises(ns.InvalidArgumentError, match="node must be one of"):
        x._op("sampled", x, node="NormalBackward3")
        ns.sync()
