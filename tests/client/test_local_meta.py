"""What a RemoteTensor knows without a server equals what the engine computes.

Each case runs the same expression on engine tensors and on proxies of a session that never
answers, and compares shape, dtype, requires_grad, is_leaf, grad_fn names (down the whole
next_functions tree) and versions.
"""

from __future__ import annotations

import warnings

import gradserve as gs
import numpy as np
import pytest
from gradserve import engine


def _graph(node, depth=0):
    """grad_fn names down the next_functions tree, as nested tuples."""
    if node is None or depth > 20:
        return None
    return (node.name(), tuple((_graph(n, depth + 1), nr) for n, nr in node.next_functions))


def _describe(t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (tuple(t.shape), t.dtype, t.requires_grad, t.is_leaf, _graph(t.grad_fn),
                t._version, t.retains_grad)


def _leaves(make):
    x = make([[1., 2.], [3., 4.]], requires_grad=True)
    w = make(2.0, requires_grad=True)
    b = make([0.5, -0.5])
    i = make([1, 0])
    return x, w, b, i


CASES = {
    "seed": lambda x, w, b, i: (x * w + 3.0).mean(),
    "add_broadcast": lambda x, w, b, i: x + b,
    "rsub": lambda x, w, b, i: 1 - x,
    "rpow": lambda x, w, b, i: 2 ** x,
    "pow_scalar": lambda x, w, b, i: x ** 2,
    "pow_tensor": lambda x, w, b, i: x ** w,
    "div": lambda x, w, b, i: x / w,
    "int_times_float": lambda x, w, b, i: i * 1.5,
    "matmul_mm": lambda x, w, b, i: x @ x,
    "matmul_mv": lambda x, w, b, i: x @ b,
    "matmul_dot": lambda x, w, b, i: b @ b,
    "compare": lambda x, w, b, i: x > 1,
    "sum_dim": lambda x, w, b, i: x.sum(dim=1, keepdim=True),
    "var_std": lambda x, w, b, i: x.var(0) + x.std(),
    "max_dim": lambda x, w, b, i: x.max(1)[0],
    "max_dim_indices": lambda x, w, b, i: x.max(1)[1],
    "argmax": lambda x, w, b, i: x.argmax(),
    "softmax": lambda x, w, b, i: x.softmax(1).log_softmax(0),
    "math": lambda x, w, b, i: x.exp().log().sqrt().sin().cos().tanh().sigmoid().relu(),
    "clamp": lambda x, w, b, i: x.clamp(min=0.0, max=2.5).clamp(min=1).abs().neg(),
    "reciprocal": lambda x, w, b, i: x.reciprocal(),
    "shapes": lambda x, w, b, i: x.reshape(4).view(2, 2).t().T.transpose(0, 1).permute(1, 0),
    "squeeze": lambda x, w, b, i: x.unsqueeze(0).squeeze(0).flatten(),
    "expand": lambda x, w, b, i: w.expand(3, 2),
    "getitem": lambda x, w, b, i: x[0, 1:],
    "getitem_none": lambda x, w, b, i: x[None, ..., 0],
    "index_tensor": lambda x, w, b, i: x[i],
    "cat": lambda x, w, b, i: gs.cat([x, x * 2], dim=1),
    "stack": lambda x, w, b, i: gs.stack([b, b]),
    "where": lambda x, w, b, i: gs.where(x > 2, x, 0.0),
    "casts": lambda x, w, b, i: x.double().float() + i.long().float(),
    "clone": lambda x, w, b, i: x.clone(),
    "detach": lambda x, w, b, i: x.detach() * w,
    "prod": lambda x, w, b, i: x.prod(),
    "no_grad_leaf_math": lambda x, w, b, i: b * 3,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_meta_as_engine(s, name):
    fn = CASES[name]
    want = fn(*_leaves(engine.tensor))
    got = fn(*_leaves(s.tensor))
    assert _describe(got) == _describe(want)


def test_no_round_trip_while_building(s, client):
    x, w, b, i = _leaves(s.tensor)
    for fn in CASES.values():
        fn(x, w, b, i)
    assert s.stats.waits == 0  # buffers may have been sent ahead; nothing waited


def test_seed_example_names(s):
    x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    w1 = s.tensor(2.0, requires_grad=True)
    w2 = s.tensor(3.0, requires_grad=True)
    l1 = x * w1
    l2 = l1 + w2
    loss = l2.mean()
    assert loss.grad_fn.name() == "MeanBackward0"
    assert l2.grad_fn.name() == "AddBackward0"
    assert l1.grad_fn.name() == "MulBackward0"
    (add, _), = loss.grad_fn.next_functions
    (mul, _), (acc_w2, _) = add.next_functions
    assert acc_w2.name() == "torch::autograd::AccumulateGrad" and acc_w2.variable is w2
    assert [n.name() for n, _ in mul.next_functions] == ["torch::autograd::AccumulateGrad"] * 2
    assert repr(loss.grad_fn).startswith("<MeanBackward0 object at 0x")
    assert loss.shape == () and loss.dtype is gs.float32
    assert x.is_leaf and not loss.is_leaf and loss.requires_grad


def test_next_functions_without_grad(s):
    x = s.tensor([1., 2.], requires_grad=True)
    c = s.tensor([3., 4.])
    y = x * c
    assert [(n is None, nr) for n, nr in y.grad_fn.next_functions] == [(False, 0), (True, 0)]
    assert y.grad_fn.next_functions[1] == (None, 0)


@pytest.mark.parametrize("dtype", [gs.float64, "float64", "double"])
def test_factories_meta(s, dtype):
    assert s.zeros(2, 3).shape == (2, 3)
    assert s.ones((4,), dtype=dtype).dtype is gs.float64
    assert s.full((2, 2), 7).dtype is gs.int64
    assert s.full((2, 2), 7.0).dtype is gs.float32
    assert s.arange(5).dtype is gs.int64 and s.arange(5).shape == (5,)
    assert s.arange(0, 1, 0.25).shape == (4,)
    assert s.eye(3, 2).shape == (3, 2)
    r = s.randn(3, requires_grad=True)
    assert r.requires_grad and r.is_leaf and r.grad_fn is None
    assert s.zeros_like(r).shape == (3,) and not s.zeros_like(r).requires_grad
    assert s.from_numpy(np.arange(3.0)).dtype is gs.float64
    assert s.tensor(np.float64(1.5)).dtype is gs.float64
    assert s.tensor([True, False]).dtype is gs.bool


def test_shape_errors_raise_locally(s, client):
    a = s.ones(2, 3)
    with pytest.raises(gs.InvalidArgumentError, match="must match the size of tensor"):
        a + s.ones(4)
    with pytest.raises(gs.InvalidArgumentError, match="cannot be multiplied"):
        a @ a
    with pytest.raises(gs.TensorIndexError):
        a.sum(dim=5)
    with pytest.raises(gs.AutogradError, match="floating point"):
        s.tensor([1, 2], requires_grad=True)
    with pytest.raises(gs.InvalidArgumentError, match="in-process"):
        a + engine.ones(2, 3)
    assert s.stats.requests == 0  # nothing was sent


def test_mixing_sessions_is_an_error(s, client):
    from gradserve._session import Session
    from gradserve.v1 import gradserve_pb2 as pb

    other = Session(client, pb.SessionInfo(session_id="other", device="cpu"), owned=True)
    with pytest.raises(gs.InvalidArgumentError, match="same session"):
        s.ones(2) + other.ones(2)
    other.close()


def test_devices_must_match(s):
    a = s.ones(2)
    b = s.ones(2).to("cuda")
    assert b.device == "cuda:0" and b.is_cuda
    assert b.grad_fn is None and b.dtype is gs.float32
    with pytest.raises(gs.InvalidArgumentError, match="same device"):
        a + b
    assert a.cpu() is a
