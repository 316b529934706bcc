"""torch's composite losses and helpers build their graphs from particular ATen overloads
(`add(Tensor, Scalar)` is AddBackward1, `clamp_min` is ClampMinBackward0, `at::norm` is
NormBackward1, `xlogy`, a clone clamped without a gradient): gradserve composes them from the
same ops, so the grad_fn graph is torch's node for node, edge for edge, and the values and
gradients are torch's, on engine tensors and in a live session."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle

from .test_grad_fn_types import _graph

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
W = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -0.1]])


def _f(M):
    return M.nn.functional


SAME_GRAPH = {
    "normalize": lambda M, x, w: _f(M).normalize(x),
    "normalize_p1_dim0": lambda M, x, w: _f(M).normalize(x * w, p=1.0, dim=0),
    "cosine_similarity": lambda M, x, w: _f(M).cosine_similarity(x, w),
    "cosine_similarity_broadcast": lambda M, x, w: _f(M).cosine_similarity(x, w[0]),
    "cosine_similarity_module": lambda M, x, w: M.nn.CosineSimilarity(dim=0)(x, w),
    "pairwise_distance": lambda M, x, w: _f(M).pairwise_distance(x, w),
    "pairwise_distance_p1_keepdim": lambda M, x, w: _f(M).pairwise_distance(
        x, w[0], p=1.0, keepdim=True),
    "kl_div_batchmean": lambda M, x, w: _f(M).kl_div(x, w.sigmoid(), reduction="batchmean"),
    "kl_div_none": lambda M, x, w: _f(M).kl_div(x, w.sigmoid(), reduction="none"),
    "kl_div_sum_log_target": lambda M, x, w: _f(M).kl_div(x, w, reduction="sum",
                                                          log_target=True),
    "cosine_embedding_loss": lambda M, x, w: _f(M).cosine_embedding_loss(
        x, w, M.tensor([1.0, -1.0], dtype=M.float64), margin=-0.5),
    "cosine_embedding_loss_1d": lambda M, x, w: _f(M).cosine_embedding_loss(
        x[0], w[0], M.tensor(-1.0, dtype=M.float64), reduction="sum"),
    "margin_ranking_loss": lambda M, x, w: _f(M).margin_ranking_loss(
        x[0], w[0], M.tensor([1.0, -1.0, 1.0], dtype=M.float64), margin=0.5),
    "triplet_margin_loss": lambda M, x, w: _f(M).triplet_margin_loss(x, w, x * w),
    "triplet_margin_loss_swap_p1": lambda M, x, w: _f(M).triplet_margin_loss(
        x, w, x * w, p=1, swap=True, reduction="none"),
    "triplet_margin_loss_module": lambda M, x, w: M.nn.TripletMarginLoss(margin=2.0)(
        x, w, x * w),
    "hinge_embedding_loss": lambda M, x, w: _f(M).hinge_embedding_loss(
        x * w, M.tensor([[1.0, -1, 1], [-1, 1, 1]], dtype=M.float64)),
    "gaussian_nll_loss": lambda M, x, w: _f(M).gaussian_nll_loss(x, w, w.exp()[:, 0],
                                                                 full=True),
    "multilabel_soft_margin_loss": lambda M, x, w: _f(M).multilabel_soft_margin_loss(
        x, w.sigmoid(), weight=M.tensor([1.0, 2.0, 0.5], dtype=M.float64)),
    # torch's linear algebra compositions: tensordot reshapes as aten's reshape records it,
    # matrix_power multiplies in torch's order, matrix_norm(1/inf) is amax of a vector norm
    "tensordot_alias": lambda M, x, w: M.tensordot(x, w, dims=([1], [1])),
    "tensordot_copy": lambda M, x, w: M.tensordot(
        M.stack([x, w, x * w]), M.stack([w, x]), dims=([2, 1], [2, 0])),
    "tensordot_int": lambda M, x, w: M.tensordot(M.stack([x, w]), w.t(), dims=1),
    **{f"matrix_power_{n}": (lambda M, x, w, n=n: M.linalg.matrix_power(x[:, :2] * w[:, 1:],
                                                                        n))
       for n in (-3, -1, 0, 1, 2, 3, 4, 5)},
    **{f"matrix_norm_{o}_{k}": (lambda M, x, w, o=o, k=k: M.linalg.matrix_norm(
        x * w, ord=o, keepdim=k, dim=(1, 0) if k else (-2, -1)))
       for o in (1, -1, float("inf"), float("-inf")) for k in (False, True)},
    "pinv_wide": lambda M, x, w: M.linalg.pinv(x * w),
    "pinv_tall_batched": lambda M, x, w: M.linalg.pinv(M.stack([x.t(), w.t()])),
    "pinv_atol": lambda M, x, w: M.linalg.pinv(x.t() @ w, atol=0.5),
    "pinv_hermitian": lambda M, x, w: M.linalg.pinv(x.t() @ x + 0.1 * M.eye(3, dtype=M.float64),
                                                    hermitian=True),
    "lstsq": lambda M, x, w: M.linalg.lstsq(x.t(), w.t()).solution,
    "lstsq_vector_b_only": lambda M, x, w: M.linalg.lstsq(x.t().detach(), w[0]).solution,
    "lstsq_wide_batched": lambda M, x, w: M.linalg.lstsq(M.stack([x, w]),
                                                                  M.stack([x * w, w])[..., :1]
                                                                  ).solution,
    "solve_right": lambda M, x, w: M.linalg.solve(x[:, :2] + 2 * M.eye(2, dtype=M.float64),
                                                  w.t()[:, :2], left=False),
    "solve_right_batched": lambda M, x, w: M.linalg.solve(
        M.stack([x[:, 1:], w[:, :2]]) + 3 * M.eye(2, dtype=M.float64), x.t()[:, :2],
        left=False),
}


def _run(M, scenario):
    x = M.tensor(X, requires_grad=True)
    w = M.tensor(W, requires_grad=True)
    return scenario(M, x, w), x, w


@pytest.mark.parametrize("name", sorted(SAME_GRAPH))
def test_the_graph_values_and_gradients_are_torchs(M, name):
    ours, x, w = _run(M, SAME_GRAPH[name])
    theirs, tx, tw = _run(torch, SAME_GRAPH[name])
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)
    np.testing.assert_allclose(np.asarray(ours.tolist()), theirs.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    ours.sum().backward()
    theirs.sum().backward()
    for mine, torchs in ((x, tx), (w, tw)):
        assert (mine.grad is None) == (torchs.grad is None)
        if torchs.grad is None:
            continue
        np.testing.assert_allclose(np.asarray(mine.grad.tolist()), torchs.grad.numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_cosine_similaritys_clamp_takes_no_gradient(M):
    # below eps torch clamps a copy of the norm without a gradient through the clamp
    grads = []
    for lib in (M, torch):
        x = lib.tensor([[1e-9, 2e-9]], dtype=lib.float64, requires_grad=True)
        y = lib.tensor([[1.0, 0.5]], dtype=lib.float64)
        lib.nn.functional.cosine_similarity(x, y, eps=1e-6).sum().backward()
        grads.append(np.asarray(x.grad.tolist()))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10)
    assert np.abs(grads[0]).max() > 1.0  # the unclamped norm's gradient, not the clamp's zero


def test_kl_divs_target_gradient_is_torchs_at_zero(M):
    # xlogy(target, target)'s gradient is nan where the target is 0, in torch as here
    grads = []
    for lib in (M, torch):
        t = lib.tensor([0.0, 0.5, 1.0], dtype=lib.float64, requires_grad=True)
        x = lib.tensor([-1.0, -2.0, -0.5], dtype=lib.float64)
        lib.nn.functional.kl_div(x, t, reduction="sum").backward()
        grads.append(np.asarray(t.grad.tolist()))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)
    assert np.isnan(grads[0][0])
