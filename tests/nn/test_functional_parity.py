"""gs.nn.functional forms of API.md §6 against torch.nn.functional (skipped without torch):
values and gradients from the same float64 inputs."""

from __future__ import annotations

import gradserve.nn as nn
import gradserve.nn.functional as F
import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI
from gradserve import engine

TF = torch.nn.functional
R = np.random.default_rng(4)


def _both(*arrays):
    ours = [engine.tensor(a, dtype=engine.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _check(out, tout, ours, theirs, rtol=1e-10):
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=rtol,
                               atol=1e-12)
    w = R.standard_normal(tuple(tout.shape))
    (out * engine.tensor(w, dtype=engine.float64)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("kernel", [(2, 2), (3, 4), (1, 3)])
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv2d_same_padding_with_even_kernels(kernel):
    (x, w), (tx, tw) = _both(R.standard_normal((2, 2, 5, 6)), R.standard_normal((3, 2, *kernel)))
    _check(F.conv2d(x, w, padding="same", dilation=(1, 2)),
           TF.conv2d(tx, tw, padding="same", dilation=(1, 2)), [x, w], [tx, tw])


def test_conv1d_functional_with_bias_stride_and_groups():
    (x, w, b), (tx, tw, tb) = _both(R.standard_normal((2, 4, 9)), R.standard_normal((6, 2, 3)),
                                    R.standard_normal(6))
    _check(F.conv1d(x, w, b, stride=2, padding=1, groups=2),
           TF.conv1d(tx, tw, tb, stride=2, padding=1, groups=2), [x, w, b], [tx, tw, tb])


def test_max_pool2d_return_indices_match_torch():
    (x,), (tx,) = _both(R.standard_normal((2, 3, 7, 6)))
    out, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True, ceil_mode=True)
    tout, tidx = TF.max_pool2d(tx, 3, 2, 1, return_indices=True, ceil_mode=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    _check(out, tout, [x], [tx])


@pytest.mark.parametrize("mode,pad", [("constant", (1, 2, -1, 1)), ("reflect", (2, 1, 1, 2)),
                                      ("replicate", (1, 3, 2, 0)), ("circular", (2, 2, 1, 1))])
def test_pad(mode, pad):
    (x,), (tx,) = _both(R.standard_normal((2, 3, 4, 5)))
    kw = {"value": 0.25} if mode == "constant" else {}
    _check(F.pad(x, pad, mode=mode, **kw), TF.pad(tx, pad, mode=mode, **kw), [x], [tx])


def test_one_hot_and_embedding():
    idx = np.array([[0, 3], [2, 2]])
    np.testing.assert_array_equal(F.one_hot(engine.tensor(idx)).numpy(),
                                  TF.one_hot(torch.tensor(idx)).numpy())
    np.testing.assert_array_equal(F.one_hot(engine.tensor(idx), 6).numpy(),
                                  TF.one_hot(torch.tensor(idx), 6).numpy())
    (w,), (tw,) = _both(R.standard_normal((4, 3)))
    _check(F.embedding(engine.tensor(idx), w, padding_idx=2),
           TF.embedding(torch.tensor(idx), tw, padding_idx=2), [w], [tw])


MASKS = [
    ("none", None, False),
    ("causal", None, True),
    ("bool", np.array([[True, False, True, True], [True, True, False, True],
                       [False, True, True, True]]), False),
    ("float", R.standard_normal((3, 4)), False),
]


@pytest.mark.parametrize("name,mask,causal", MASKS, ids=[m[0] for m in MASKS])
def test_scaled_dot_product_attention(name, mask, causal):
    arrays = [R.standard_normal((2, 2, 3, 5)), R.standard_normal((2, 2, 4, 5)),
              R.standard_normal((2, 2, 4, 6))]
    ours, theirs = _both(*arrays)
    m = None if mask is None else engine.tensor(mask, dtype=None if mask.dtype == bool
                                                else engine.float64)
    tm = None if mask is None else torch.tensor(mask)
    _check(F.scaled_dot_product_attention(*ours, attn_mask=m, is_causal=causal, scale=0.3),
           TF.scaled_dot_product_attention(*theirs, attn_mask=tm, is_causal=causal, scale=0.3),
           ours, theirs)


@pytest.mark.parametrize("name,fn", [
    ("batch_norm-train", lambda f, x, w, b: f.batch_norm(x, None, None, w, b, training=True)),
    ("layer_norm", lambda f, x, w, b: f.layer_norm(x, (4,), w, b)),
    ("group_norm", lambda f, x, w, b: f.group_norm(x, 2, w, b)),
    ("layer_norm-no-affine", lambda f, x, w, b: f.layer_norm(x, (4,)) * w + b),
])
def test_norms(name, fn):
    (x, w, b), (tx, tw, tb) = _both(R.standard_normal((3, 4, 2)).transpose(0, 2, 1).copy()
                                    if name.startswith("layer") else
                                    R.standard_normal((3, 4, 2)), R.standard_normal(4),
                                    R.standard_normal(4))
    _check(fn(F, x, w, b), fn(TF, tx, tw, tb), [x, w, b], [tx, tw, tb])


def test_module_to_casts_in_place_and_keeps_parameters():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    weight = model[0].weight
    opt_params = list(model.parameters())
    model.to(engine.float64)
    assert model[0].weight is weight and weight.dtype is engine.float64
    assert model[1].running_mean.dtype is engine.float64
    assert model[1].num_batches_tracked.dtype is engine.int64  # integers are not cast
    assert list(model.parameters()) == opt_params
    assert model.float()[0].weight.dtype is engine.float32
    assert model.to("cpu") is model
