"""torch's gradient layout contract: a contiguous leaf's .grad is contiguous, whatever
layout the gradient reached it in (the weight of a Linear gets its gradient through `t()`),
on both tensor kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_linear_weights_grad_is_contiguous_as_torchs(M, create_graph):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    x0 = rng.standard_normal((5, 4))
    w = M.tensor(w0, requires_grad=True)
    (M.nn.functional.linear(M.tensor(x0), w) ** 2).sum().backward(create_graph=create_graph)
    tw = torch.tensor(w0, requires_grad=True)
    (torch.nn.functional.linear(torch.tensor(x0), tw) ** 2).sum().backward(
        create_graph=create_graph)
    assert w.grad.is_contiguous() and tw.grad.is_contiguous()
    assert w.grad.stride() == tw.grad.stride()
    np.testing.assert_allclose(w.grad.detach().cpu().numpy(), tw.grad.detach().numpy(),
                               rtol=1e-12)


def test_a_transposed_leafs_grad_has_torchs_values(M):
    base = M.tensor(np.arange(12.0).reshape(3, 4))
    leaf = base.t().detach().requires_grad_()
    (leaf * 2).sum().backward()
    np.testing.assert_array_equal(leaf.grad.cpu().numpy(), np.full((4, 3), 2.0))


def test_an_optimizer_step_keeps_weight_and_grad_contiguous(M):
    layer = M.nn.Linear(4, 3)
    opt = M.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        layer(M.tensor(np.ones((2, 4), dtype=np.float32))).sum().backward()
        opt.step()
    assert layer.weight.is_contiguous() and layer.weight.grad.is_contiguous()


@pytest.mark.parametrize("product", ["mm", "addmm"])
def test_a_column_major_factor_gets_its_gradient_column_major_as_torchs(M, product):
    # torch's matrix products lay out each factor's gradient as the factor: so `w.t()`'s
    # gradient is column-major and w's own (through TBackward) contiguous with no copy
    rng = np.random.default_rng(1)
    x0, w0, b0 = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    strides = []
    for lib in (M, torch):
        x = lib.tensor(x0, requires_grad=True).t().contiguous().t()  # column-major too
        w = lib.tensor(w0, requires_grad=True)
        wt = w.t()
        wt.retain_grad()
        x.retain_grad()
        y = x.mm(wt) if product == "mm" else lib.addmm(lib.tensor(b0), x, wt)
        (y ** 2).sum().backward()
        strides.append((wt.grad.stride(), x.grad.stride(), w.grad.stride()))
    assert strides[0] == strides[1]
