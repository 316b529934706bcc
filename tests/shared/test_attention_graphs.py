"""F.scaled_dot_product_attention where torch takes its math path (inputs that are not 4-D,
dropout, a mask that needs a gradient) records aten's `_scaled_dot_product_attention_math`
node for node: both operands scaled by the square root of the scale (MulBackward1, the key's
result keeping its transposed layout), the batched matmul's expand/reshape/bmm/_unsafe_view,
the mask added in place, `_safe_softmax`, dropout's multiply, the product with value. With
torch's values and gradients, on engine tensors and in a live session."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle

from .test_grad_fn_types import _graph

SHAPES = {
    "3d": ((2, 3, 4), (2, 5, 4), (2, 5, 6)),
    "2d": ((3, 4), (5, 4), (5, 6)),
    "5d": ((2, 1, 2, 3, 4), (2, 1, 2, 5, 4), (2, 1, 2, 5, 6)),
    "broadcast": ((2, 1, 3, 4), (2, 5, 4), (5, 6)),
    "batch_of_one": ((1, 3, 4), (1, 5, 4), (1, 5, 6)),
}
MASKS = {
    "none": lambda M: None,
    "bool": lambda M: M.tensor(np.arange(15).reshape(3, 5) % 3 != 0),
    "float": lambda M: M.tensor(np.linspace(-1, 1, 15).reshape(3, 5)),
    "float_grad": lambda M: M.tensor(np.linspace(-1, 1, 15).reshape(3, 5), requires_grad=True),
    "causal": "causal",
}


def _run(M, shapes, mask, **kw):
    rng = np.random.default_rng(3)
    q, k, v = (M.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes)
    if mask == "causal":
        kw["is_causal"] = True
    elif MASKS[mask](M) is not None:
        kw["attn_mask"] = MASKS[mask](M)
    y = M.nn.functional.scaled_dot_product_attention(q, k, v, **kw)
    return y, [q, k, v] + ([kw["attn_mask"]] if mask == "float_grad" else [])


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("mask", sorted(MASKS))
def test_the_math_path_is_torchs(M, shape, mask):
    ours, ours_in = _run(M, SHAPES[shape], mask)
    theirs, theirs_in = _run(torch, SHAPES[shape], mask)
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)
    np.testing.assert_allclose(np.asarray(ours.tolist()), theirs.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    ours.pow(2).sum().backward()
    theirs.pow(2).sum().backward()
    for mine, torchs in zip(ours_in, theirs_in, strict=True):
        np.testing.assert_allclose(np.asarray(mine.grad.tolist()), torchs.grad.numpy(),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", ["3d", "2d"])
def test_dropout_and_a_scale_take_the_math_path_as_torchs(M, shape):
    ours, _ = _run(M, SHAPES[shape], "none", dropout_p=0.25, scale=0.3)
    theirs, _ = _run(torch, SHAPES[shape], "none", dropout_p=0.25, scale=0.3)
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)


def test_a_4d_mask_that_needs_a_gradient_takes_the_math_path(M):
    shapes = ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4))
    graphs = []
    for lib in (M, torch):
        rng = np.random.default_rng(5)
        q, k, v = (lib.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes)
        mask = lib.tensor(rng.standard_normal((3, 5)), requires_grad=True)
        graphs.append(_graph(lib.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask).grad_fn))
    assert graphs[0] == graphs[1]
    assert graphs[0][1][0][1][0][1][0][1][0][0] == "SafeSoftmaxBackward0"


def test_safe_softmax_is_torchs_on_a_row_that_attends_nothing(M):
    rows = [[1.0, 2.0, float("-inf")], [float("-inf")] * 3]
    x, tx = M.tensor(rows, requires_grad=True), torch.tensor(rows, requires_grad=True)
    y, ty = x._op("_safe_softmax", x, dim=-1), torch._safe_softmax(tx, -1)
    np.testing.assert_allclose(np.asarray(y.tolist()), ty.detach().numpy(), rtol=1e-6)
    weights = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    (y * M.tensor(weights)).sum().backward()
    (ty * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad.tolist()), tx.grad.numpy(), rtol=1e-6)


def test_mul_scalar_keeps_a_transposed_layout_as_torchs(M):
    x, tx = M.tensor(np.ones((3, 4))).t(), torch.ones(3, 4, dtype=torch.float64).t()
    y, ty = x._op("mul_scalar", x, other=2.0), tx * torch.tensor(2.0).item()
    assert tuple(y.stride()) == ty.stride() and not y.is_contiguous()
    np.testing.assert_array_equal(np.asarray(y.reshape(12).tolist()),
                                  ty.reshape(12).numpy())


def test_the_new_ops_gradcheck_to_second_order():
    from gradserve import engine
    from gradserve.engine.gradcheck import check_grads

    rng = np.random.default_rng(0)
    x = engine.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    check_grads(lambda t: t._op("_safe_softmax", t, dim=-1), [x], order=2)
    check_grads(lambda t: t.transpose(1, 2)._op("mul_scalar", t.transpose(1, 2), other=0.7),
                [x], order=2)
    q, k, v = (engine.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 3, 4), (2, 5, 4), (2, 5, 2)))
    import gradserve.nn.functional as F

    check_grads(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
                [q, k, v], order=2)
