"""soft_margin_loss, multi_margin_loss and prelu are torch's one-node kernels
(SoftMarginLossBackward0, MultiMarginLossBackward0 with one edge to the input;
PreluKernelBackward0 with edges to the input and the weight aten viewed): the graph, the
values and the gradients are torch's in-process and in a session, and the float64 first and
second derivatives match central differences."""

from __future__ import annotations

import re

import gradserve.nn.functional as F
import numpy as np
import pytest
import torch  # the oracle
from gradserve import engine
from gradserve.engine.gradcheck import check_grads

from .test_grad_fn_composites import W, X, _run
from .test_grad_fn_types import _graph


def _f(M):
    return M.nn.functional


CASES = {
    "soft_margin_mean": lambda M, x, w: _f(M).soft_margin_loss(x * w, w.detach().sign()),
    "soft_margin_none_broadcast": lambda M, x, w: _f(M).soft_margin_loss(
        x, M.tensor([1.0, -1.0, 1.0], dtype=M.float64), reduction="none"),
    "soft_margin_sum": lambda M, x, w: _f(M).soft_margin_loss(x, w.detach(), reduction="sum"),
    "multi_margin": lambda M, x, w: _f(M).multi_margin_loss(x * w, M.tensor([0, 2])),
    "multi_margin_p2_weight": lambda M, x, w: _f(M).multi_margin_loss(
        x, M.tensor([1, 2]), p=2, margin=0.7, weight=M.tensor([1.0, 2.0, 0.5], dtype=M.float64),
        reduction="none"),
    "multi_margin_1d_sum": lambda M, x, w: _f(M).multi_margin_loss(
        x[0], M.tensor(1), reduction="sum"),
    "multi_margin_module": lambda M, x, w: M.nn.MultiMarginLoss(margin=2.0)(w, M.tensor([2, 0])),
    "prelu_channels": lambda M, x, w: _f(M).prelu(x * w, w.reshape(6)[3:]),
    "prelu_one_3d": lambda M, x, w: _f(M).prelu(x.reshape(1, 2, 3), w.reshape(6)[:1]),
    "prelu_scalar_weight": lambda M, x, w: _f(M).prelu(x, w.sum()),
    "prelu_1d": lambda M, x, w: _f(M).prelu(x.reshape(6), w.reshape(6)[1:2]),
    "prelu_module": lambda M, x, w: M.nn.PReLU(3, dtype=M.float64)(x * w),
    "bilinear": lambda M, x, w: _f(M).bilinear(x, w * x, (x.t() @ w).reshape(1, 3, 3)),
    "bilinear_bias_3d": lambda M, x, w: _f(M).bilinear(
        x.reshape(2, 1, 3), w.reshape(2, 1, 3), M.cat([x, w, x * w]).reshape(2, 3, 3),
        w.sum(1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_node_values_and_gradients_are_torchs(M, name):
    ours, x, w = _run(M, CASES[name])
    theirs, tx, tw = _run(torch, CASES[name])
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)
    assert type(ours.grad_fn).__name__ in ("SoftMarginLossBackward0",
                                           "MultiMarginLossBackward0", "PreluKernelBackward0",
                                           "ViewBackward0", "AddBackward0")
    assert ours.dtype is M.float64 and tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(np.asarray(ours.tolist()), theirs.detach().numpy(), rtol=1e-12)
    ours.sum().backward()
    theirs.sum().backward()
    for mine, torchs in ((x, tx), (w, tw)):
        assert (mine.grad is None) == (torchs.grad is None)
        if torchs.grad is not None:
            np.testing.assert_allclose(np.asarray(mine.grad.tolist()), torchs.grad.numpy(),
                                       rtol=1e-10, atol=1e-14)


def test_torchs_refusals(M):
    x = M.zeros(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument "
                                           "'target'"):
        _f(M).soft_margin_loss(x, M.ones(2, 3, requires_grad=True))
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument "
                                           "'weight'"):
        _f(M).multi_margin_loss(x, M.tensor([0, 1]), weight=M.ones(3, requires_grad=True))
    with pytest.raises(RuntimeError, match=r"Expected target size \[2\], but got \[3\]"):
        _f(M).multi_margin_loss(x, M.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match="expected scalar type Long but found Float"):
        _f(M).multi_margin_loss(x, M.tensor([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="expected scalar type Double but found Float"):
        _f(M).multi_margin_loss(x.double(), M.tensor([0, 1]), weight=M.ones(3))
    with pytest.raises(RuntimeError, match="target out of range"):
        _f(M).multi_margin_loss(x, M.tensor([0, 3])).item()


def _leaf(a):
    return engine.tensor(np.asarray(a, np.float64), requires_grad=True)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_soft_margin_gradcheck(order, reduction):
    y = engine.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], dtype=engine.float64)
    check_grads(lambda x: F.soft_margin_loss(x, y, reduction=reduction),
                [_leaf(X)], order=order)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_gradcheck(order, p):
    # entries kept away from the hinge's corner, where no derivative exists
    x = _leaf(X * 1.3 + 0.05)
    weight = engine.tensor([0.5, 2.0, 1.5], dtype=engine.float64)
    check_grads(lambda x: F.multi_margin_loss(
        x, engine.tensor([2, 0]), p=p, margin=0.9, weight=weight, reduction="none"),
        [x], order=order)
    check_grads(lambda x: F.multi_margin_loss(x, engine.tensor(1), p=p),
                [_leaf(W[0])], order=order)


def test_prelus_refusals_are_torchs(M):
    F = _f(M)
    for x, weight, text in (
            (M.zeros(2, 3), M.ones(1, 3), "Expected `weight` to be a scalar or 1D tensor, but "
                                          "got: ndim = 2"),
            (M.zeros(2, 4), M.ones(3), "Found parameter numbers = 3 and channel size = 4."),
            (M.zeros(3), M.ones(3), "Found parameter numbers = 3 and channel size = 1."),
            (M.zeros(()), M.ones(3), "Not allow zero-dim input tensor."),
            (M.zeros(2, 3), M.ones(3, dtype=M.float64),
             "prelu: Type promoting not supported. Got Float and Double")):
        with pytest.raises(RuntimeError, match=re.escape(text)):
            F.prelu(x, weight)
        with pytest.raises(RuntimeError, match=re.escape(text)):
            torch.nn.functional.prelu(torch.zeros(tuple(x.shape)), torch.ones(
                tuple(weight.shape), dtype=torch.float64 if weight.dtype is M.float64 else None))


@pytest.mark.parametrize("order", [1, 2])
def test_prelu_gradcheck(order):
    x = _leaf(np.concatenate([X, -W]).reshape(2, 2, 3) * 1.1 + 0.05)
    check_grads(lambda x, w: F.prelu(x, w), [x, _leaf([0.25, -0.5])], order=order)
    check_grads(lambda x, w: F.prelu(x, w), [_leaf(X.reshape(6) + 0.05), _leaf(0.3)],
                order=order)


@pytest.mark.parametrize("order", [1, 2])
def test_trilinear_gradcheck(order):
    rng = np.random.default_rng(5)
    check_grads(lambda a, b, w, bias: F.bilinear(a, b, w, bias),
                [_leaf(rng.standard_normal(s)) for s in ((3, 2), (3, 4), (2, 2, 4), (2,))],
                order=order)


def test_bilinears_refusals_are_torchs(M):
    for shapes, text in ((((2, 3), (2,), (4, 3, 2)), "input dimensions do not match: got 2 and 1"),
                         (((2, 3), (3, 2), (4, 3, 2)),
                          "input batch dimensions do not match at dim 0: got 2 and 3"),
                         (((2, 3), (2, 2), (4, 2, 2)),
                          "input1 size does not match weight size: got 3 but expected 2"),
                         (((2, 3), (2, 2), (4, 3, 3)),
                          "input2 size does not match weight size: got 2 but expected 3"),
                         (((2, 3), (2, 2), (4, 3, 2), (3,)),
                          "bias size does not match weight size: got 3 but expected 4")):
        for lib in (M, torch):
            with pytest.raises(RuntimeError, match=re.escape("bilinear(): " + text)):
                lib.nn.functional.bilinear(*[lib.ones(s) for s in shapes])


def _attention_inputs(M):
    rng = np.random.default_rng(4)
    return [M.tensor(rng.standard_normal(s), requires_grad=True)
            for s in ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 8))]


ATTENTION = {
    "plain": lambda M: {},
    "causal_scale": lambda M: dict(is_causal=True, scale=0.3),
    "bool_mask": lambda M: dict(attn_mask=M.tensor(np.array([[1, 0, 1, 1, 0]] * 4, bool))),
    "float_mask_4d": lambda M: dict(attn_mask=M.tensor(
        np.linspace(-1, 1, 120).reshape(2, 3, 4, 5))),
}


@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_attention_on_the_cpu_is_torchs_flash_node(M, name):
    grads = []
    for lib in (M, torch):
        q, k, v = _attention_inputs(lib)
        y = lib.nn.functional.scaled_dot_product_attention(q, k, v, **ATTENTION[name](lib))
        (y * y).sum().backward()
        grads.append((_graph(y.grad_fn), y.tolist(), [t.grad.tolist() for t in (q, k, v)],
                      str(q.device)))
    ours, theirs = grads
    if ours[3] == "cpu":  # torch's CUDA backends record other nodes
        assert ours[0] == theirs[0]
        assert ours[0][0] == "ScaledDotProductFlashAttentionForCpuBackward0"
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-10, atol=1e-12)
    for mine, torchs in zip(ours[2], theirs[2], strict=True):
        np.testing.assert_allclose(mine, torchs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_gradcheck(order, causal):
    rng = np.random.default_rng(6)
    mask = engine.tensor(np.linspace(-1, 1, 6).reshape(2, 3))
    check_grads(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=None if causal else mask, is_causal=causal),
        [_leaf(rng.standard_normal(s)) for s in ((1, 2, 2, 3), (1, 2, 3, 3), (1, 2, 3, 3))],
        order=order)
