"""What only the in-process engine has: its generators, its device-string parsing, its op
registry, numpy memory sharing, tensors built on a raw array. Every semantics rule of API.md
section 3 is tested on both backends in tests/shared/test_semantics.py; remote sessions'
own random streams are tested in tests/e2e/test_sdk.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gradserve import engine as E
from gradserve.engine import InvalidArgumentError


# -- randomness: engine.Generator and using_generator -------------------------------------------
def test_generators_never_share_streams():
    g1, g2 = E.Generator(7), E.Generator(7)
    E.manual_seed(0)
    default_first = E.randn(4).numpy()
    E.manual_seed(0)
    with E.using_generator(g1):
        first = E.randn(4).numpy()
        second = E.randn(4).numpy()
    with E.using_generator(g2):  # g1's draws did not advance g2
        np.testing.assert_array_equal(E.randn(4).numpy(), first)
    # and neither advanced the default generator
    np.testing.assert_array_equal(E.randn(4).numpy(), default_first)
    assert not np.array_equal(first, second)
    g1.manual_seed(7)
    with E.using_generator(g1):
        np.testing.assert_array_equal(E.randn(4).numpy(), first)


def test_generator_context_is_per_thread():
    g = E.Generator(3)
    with E.using_generator(E.Generator(3)):
        expected = E.randn(3).numpy()
    ready, done, seen = threading.Event(), threading.Event(), {}

    def other():
        ready.wait()
        seen["other"] = E.randn(3).numpy()  # the default stream, not g's
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with E.using_generator(g):
        ready.set()
        done.wait()
        np.testing.assert_array_equal(E.randn(3).numpy(), expected)
    t.join()
    assert not np.array_equal(seen["other"], expected)


# -- devices -------------------------------------------------------------------------------------
def test_canonical_device():
    assert E.canonical_device(None) == "cpu"
    assert E.canonical_device("cpu") == "cpu"
    assert E.canonical_device("cuda") == "cuda:0"
    assert E.canonical_device("cuda:1") == "cuda:1"
    with pytest.raises(InvalidArgumentError, match="Expected one of cpu, cuda device type at "
                                                   "start of device string: tpu"):
        E.canonical_device("tpu")
    with pytest.raises(InvalidArgumentError, match="Invalid device string: 'cuda:x'"):
        E.canonical_device("cuda:x")


def test_mixing_devices_is_an_error():
    cpu = E.tensor([1.0, 2.0])
    # A tensor that claims another device: the dispatcher must refuse before computing.
    fake = E.Tensor(np.array([1.0, 2.0], np.float32), "cuda:0")
    with pytest.raises(InvalidArgumentError, match="Expected all tensors to be on the same "
                                                   "device, but found at least two devices, "
                                                   "cpu and cuda:0!"):
        cpu + fake


# -- the op registry and numpy ------------------------------------------------------------------
def test_unknown_op():
    with pytest.raises(InvalidArgumentError, match="unknown op 'nope'"):
        E.get_op("nope")


def test_from_numpy_shares_memory():
    # as torch.from_numpy; a remote session's from_numpy is a copy sent to the server
    arr = np.zeros(3, np.float32)
    t = E.from_numpy(arr)
    arr[0] = 5
    assert t.tolist()[0] == 5.0


@pytest.mark.parametrize("grad_on", [True, False])
def test_fused_sgd_ops_equal_the_expressions_they_replace(grad_on):
    """optim_sgd and optim_momentum write exactly what p.sub_(g * lr) and
    b.mul_(m).add_(g * s) write, with or without a graph around them."""
    rng = np.random.default_rng(3)
    p0, b0, g0 = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    p, b, g = E.tensor(p0), E.tensor(b0), E.tensor(g0)
    with E.set_grad_enabled(grad_on):
        p._inplace("optim_sgd", g, lr=0.1)
        b._inplace("optim_momentum", g, momentum=0.9, scale=0.5)
    ep, eb = E.tensor(p0), E.tensor(b0)
    ep.sub_(E.tensor(g0) * 0.1)
    eb.mul_(0.9).add_(E.tensor(g0) * 0.5)
    assert p.numpy().tobytes() == ep.numpy().tobytes()
    assert b.numpy().tobytes() == eb.numpy().tobytes()
    assert p._version == b._version == 1


# -- backward's plan: the dependency counts it walks by ----------------------------------------
def _reference_deps(roots, targets=None):
    """What `backward_graph` must give, the long way: each node's kids, a depth-first
    post-order, the nodes that lead to a target, then the edges among them counted."""
    children, order = {}, []

    def visit(node):
        children[node] = [c for c, _ in node.next_functions if c is not None]
        for c in children[node]:
            if c not in children:
                visit(c)
        order.append(node)

    for root in roots:
        if root not in children:
            visit(root)
    needed = set()
    for node in order:
        if targets is None or node in targets or any(c in needed for c in children[node]):
            needed.add(node)
    deps = {n: 0 for n in reversed(order) if n in needed}
    for node in deps:
        for c in children[node]:
            if c in deps:
                deps[c] += 1
    return deps


def _graphs():
    x = E.randn(3, 4, requires_grad=True)
    w = E.randn(4, 4, requires_grad=True)
    h = x @ w
    diamond = (h * h + h.sum()) @ w.t() + x @ w  # shared nodes, a leaf reached three ways
    yield [diamond.relu().sum() + (x * x).sum()], [w]
    a, b = x.split(2, dim=1)  # a node with two outputs, both used
    yield [(a * b).sum(), (a + 1).sum()], [a]  # two roots sharing the split
    yield [(E.randn(2, requires_grad=True) * 2).sum()], None
    leaf = E.randn(2, requires_grad=True)
    yield [leaf * 1, leaf], [leaf]  # a root that is a leaf's accumulator


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("with_inputs", [False, True])
def test_backward_plan_counts_each_nodes_edges_roots_first(k, with_inputs):
    from gradserve.engine.core.autograd import plan_backward

    roots, inputs = list(_graphs())[k]
    inputs = inputs if with_inputs else None
    _, targets, deps = plan_backward(roots, inputs)
    starts = list(dict.fromkeys(
        r.grad_fn if r.grad_fn is not None else r._accumulator() for r in roots))
    assert list(deps.items()) == list(_reference_deps(starts, targets).items())
