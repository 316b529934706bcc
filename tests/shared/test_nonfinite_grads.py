"""Gradients that meet an infinite or NaN upstream gradient, and NaN inputs, as torch's.

Where torch's derivative masks (relu's `threshold_backward`, clamp's and sinc's `where`, the
scatter of `max(dim)` and `nll_loss`, `max()`/`median()`'s evenly distributed share), the
positions it masks get 0 whatever the upstream gradient holds: a product with a 0/1 mask
would make them NaN (inf * 0). And `median` propagates NaN as torch's does. torch is the
oracle, element by element (NaN, inf and 0 alike), on engine tensors and in a live session.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch  # the oracle

INF, NAN = math.inf, math.nan
X = [-2.0, -0.5, 0.0, 0.5, 2.0]


def _z(L, x):
    return L.zeros(5, dtype=x.dtype)


CASES = {
    "relu": lambda L, x: x.relu(),
    "relu_": lambda L, x: (x * 1.0).relu_(),
    "clamp": lambda L, x: x.clamp(-1, 1),
    "clamp_min": lambda L, x: x.clamp(min=0),
    "clamp_max_bound": lambda L, x: x.clamp(max=0.0),
    "clamp_to_a_point": lambda L, x: x.clamp(0.0, 0.0),
    "clamp_tensor_bounds": lambda L, x: x.clamp(L.full((5,), -1.0, dtype=x.dtype),
                                                L.full((5,), 1.0, dtype=x.dtype)),
    "threshold": lambda L, x: L.nn.functional.threshold(x, 0.1, 20.0),
    "hardtanh": lambda L, x: L.nn.functional.hardtanh(x),
    "relu6": lambda L, x: L.nn.functional.relu6(x),
    "hardshrink": lambda L, x: L.nn.functional.hardshrink(x),
    "softshrink": lambda L, x: L.nn.functional.softshrink(x),
    "sinc": lambda L, x: x.sinc(),
    "max": lambda L, x: x.max().reshape(1),
    "min": lambda L, x: x.min().reshape(1),
    "median": lambda L, x: x.median().reshape(1),
    "max_dim": lambda L, x: x.reshape(1, 5).max(1)[0],
    "min_dim": lambda L, x: x.reshape(1, 5).min(1)[0],
    "max_of_ties": lambda L, x: L.stack([x, x]).max(0)[0],
    "median_dim": lambda L, x: x.reshape(1, 5).median(1)[0],
    "max_with_a_nan": lambda L, x: (x * L.tensor([1, NAN, 1, 1, 1], dtype=x.dtype)).max()
    .reshape(1),
    "median_with_a_nan": lambda L, x: (x * L.tensor([1, NAN, 1, 1, 1], dtype=x.dtype))
    .median().reshape(1),
    "median_dim_with_a_nan": lambda L, x: (x * L.tensor([1, NAN, 1, 1, 1], dtype=x.dtype))
    .reshape(1, 5).median(1)[0],
    "nll_loss": lambda L, x: L.nn.functional.nll_loss(x.reshape(1, 5), L.tensor([2]))
    .reshape(1),
    "nll_loss_sum": lambda L, x: L.nn.functional.nll_loss(
        x.reshape(1, 5).expand(2, 5), L.tensor([2, 4]), reduction="sum").reshape(1),
    "nll_loss_none": lambda L, x: L.nn.functional.nll_loss(
        x.reshape(1, 5).expand(2, 5), L.tensor([2, 4]), reduction="none"),
    "nll_loss_ignored_row": lambda L, x: L.nn.functional.nll_loss(
        x.reshape(1, 5).expand(2, 5), L.tensor([2, -100])).reshape(1),
    "cross_entropy": lambda L, x: L.nn.functional.cross_entropy(x.reshape(1, 5), L.tensor([2]))
    .reshape(1),
    "upsample_nearest": lambda L, x: L.nn.functional.interpolate(
        x.reshape(1, 1, 5), scale_factor=2.0, mode="nearest").reshape(-1),
    "downsample_nearest": lambda L, x: L.nn.functional.interpolate(
        x.reshape(1, 1, 5), size=2, mode="nearest").reshape(-1),
    "upsample_linear": lambda L, x: L.nn.functional.interpolate(
        x.reshape(1, 1, 5), size=7, mode="linear").reshape(-1),
    "upsample_bilinear": lambda L, x: L.nn.functional.interpolate(
        x.reshape(1, 1, 1, 5), size=(2, 8), mode="bilinear", align_corners=True).reshape(-1),
    "pow_0": lambda L, x: x ** 0,
    "fill_": lambda L, x: (x * 2).fill_(1.0),
    "sort": lambda L, x: x.sort()[0],
    "where": lambda L, x: L.where(x > 0, x, 0.0),
    "maximum": lambda L, x: L.maximum(x, _z(L, x)),
}


def _grad(L, case, upstream):
    x = L.tensor(X, dtype=L.float64, requires_grad=True)
    out = CASES[case](L, x)
    (out * upstream).sum().backward()
    return type(out.grad_fn).__name__, [repr(v) for v in x.grad.tolist()]


@pytest.mark.parametrize("upstream", [3.0, -3.0, INF, NAN], ids=["finite", "negative", "inf",
                                                                  "nan"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_masked_positions_get_torchs_gradient_whatever_flows_in(M, case, upstream):
    """Element by element as torch's, the sign of a masked zero included (`-0.` prints)."""
    ours = _grad(M, case, upstream)
    theirs = _grad(torch, case, upstream)
    assert ours[0] == theirs[0]
    # NaN, inf and zero where torch's are, with torch's signs; finite values to rounding
    # (summation order may move the last bits)
    np.testing.assert_allclose([float(v) for v in ours[1]], [float(v) for v in theirs[1]],
                               rtol=1e-12, atol=0, equal_nan=True)
    assert [r.startswith("-") for r in ours[1]] == [r.startswith("-") for r in theirs[1]]


def _medians(L):
    x = L.tensor([[-2.0, NAN, 0.0, 0.5, 2.0], [1.0, 2.0, 3.0, NAN, NAN], [3.0, 1.0, 2.0, 0.0, 5.0]])
    by_row, by_col = x.median(1), x.median(0, keepdim=True)
    return [repr(v) for v in [x.median().item(), x[2].median().item()]], \
        [by_row.values.tolist(), by_row.indices.tolist(), by_col.values.tolist(),
         by_col.indices.tolist()]


def test_median_propagates_nan_as_torch(M):
    ours, theirs = _medians(M), _medians(torch)
    assert ours[0] == theirs[0] == ["nan", "2.0"]
    assert repr(ours[1]) == repr(theirs[1])


CLAMP_BOUNDS = {
    "clamp_min_number": lambda L, x, t: x.clamp_min(0.0),
    "clamp_max_number": lambda L, x, t: L.clamp_max(x, 1),
    "clamp_min_tensor": lambda L, x, t: x.clamp_min(t),
    "clamp_max_tensor": lambda L, x, t: L.clamp_max(x, t),
    "clamp_min_in_place": lambda L, x, t: (x * 1.0).clamp_min_(t),
    "clamp_max_in_place": lambda L, x, t: (x * 1.0).clamp_max_(0.5),
    "integer_by_a_float": lambda L, x, t: L.tensor([1, 2]).clamp_min(1.5),
}


@pytest.mark.parametrize("upstream", [3.0, INF], ids=["finite", "inf"])
@pytest.mark.parametrize("case", sorted(CLAMP_BOUNDS))
def test_clamp_min_and_max_as_torch(M, case, upstream):
    """torch's own nodes (ClampMinBackward0 for a number, ClampMinBackward1 with an edge to a
    tensor bound), values, and gradients to both: ties pass to self, the rest to the bound."""
    def run(L):
        x = L.tensor([-2.0, 0.5, 3.0], dtype=L.float64, requires_grad=True)
        t = L.tensor([0.0, 0.5, 1.0], dtype=L.float64, requires_grad=True)
        out = CLAMP_BOUNDS[case](L, x, t)
        if not out.requires_grad:
            return str(out.dtype).split(".")[-1], out.tolist()
        edges = [None if fn is None else type(fn).__name__ for fn, _ in out.grad_fn.next_functions]
        (out * upstream).sum().backward()
        return (type(out.grad_fn).__name__, edges, out.tolist(),
                [None if v.grad is None else v.grad.tolist() for v in (x, t)])

    assert run(M) == run(torch)
