"""The gradients of `linalg.det` and `linalg.slogdet` at singular matrices, as torch 2.13's,
on engine tensors and on a session (cpu and the GPU kind): det's plain backward is torch's
`g * det * A^-T` from nudged LU factors (0 where det is exactly 0), with create_graph the
SVD form of the cofactors there, differentiable again at rank n-1; a 1x1 matrix's gradient
is g. slogdet is not differentiable there: its plain gradient is non-finite, create_graph
raises torch's solve error. Away from singular points the float64 gradchecks of
tests/engine/test_gradcheck.py hold (first and second order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

SINGULAR = {
    "rank1_2x2": [[1.0, 2.0], [2.0, 4.0]],
    "rank2_3x3": [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]],
    "rank1_3x3": [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 6.0, 9.0]],
    "zero_2x2": [[0.0, 0.0], [0.0, 0.0]],
    "zero_row": [[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
    "zero_column": [[0.0, 1.0, 2.0], [0.0, 3.0, 4.0], [0.0, 5.0, 6.0]],
    "rank3_4x4": [[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0],
                  [0.0, 1.0, 0.0, 1.0]],
    "zero_1x1": [[0.0]],
    "batch_mixed": [[[2.0, 1.0], [1.0, 3.0]], [[1.0, 2.0], [2.0, 4.0]]],
    "nonsingular": [[2.0, 1.0, 0.5], [1.0, 3.0, -1.0], [0.0, 1.0, 4.0]],
}
# rank n-1 (or invertible): the cofactors are differentiable, torch's second order is finite
SECOND_ORDER = ["rank1_2x2", "rank2_3x3", "zero_row", "zero_column", "rank3_4x4",
                "batch_mixed", "nonsingular"]


def _arr(t):
    return np.asarray(t.tolist())


def _det_grads(M, name, second):
    a = M.tensor(SINGULAR[name], dtype=M.float64, requires_grad=True)
    w = M.tensor(np.linspace(0.5, 2.0, int(np.prod(a.shape[:-2], dtype=int))).reshape(
        a.shape[:-2]), dtype=M.float64)
    plain, = M.autograd.grad((M.linalg.det(a) * w).sum(), a)
    graph, = M.autograd.grad((M.linalg.det(a) * w).sum(), a, create_graph=True)
    out = [_arr(M.linalg.det(a).detach()), _arr(plain), _arr(graph.detach())]
    if second:
        hess, = M.autograd.grad((graph * graph).sum(), a)
        out.append(_arr(hess))
    return out


@pytest.mark.parametrize("name", sorted(SINGULAR))
def test_det_gradients_are_torchs(M, name):
    second = name in SECOND_ORDER
    for ours, theirs in zip(_det_grads(M, name, second), _det_grads(torch, name, second),
                            strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_det_with_create_graph_gives_the_cofactors_at_a_singular_matrix(M):
    a = M.tensor(SINGULAR["rank1_2x2"], dtype=M.float64, requires_grad=True)
    g, = M.autograd.grad(M.linalg.det(a), a, create_graph=True)
    np.testing.assert_allclose(_arr(g.detach()), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)
    assert g.requires_grad
    plain, = M.autograd.grad(M.linalg.det(a), a)
    assert not np.any(_arr(plain))  # torch's plain path: det * A^-T with det = 0


@pytest.mark.parametrize("name", sorted(set(SINGULAR) - {"nonsingular", "zero_1x1"}))
def test_slogdet_at_a_singular_matrix_is_torchs(M, name):
    def grads(L):
        a = L.tensor(SINGULAR[name], dtype=L.float64, requires_grad=True)
        sign, logabs = L.linalg.slogdet(a)
        plain, = L.autograd.grad(logabs.sum(), a)
        try:
            L.autograd.grad(L.linalg.slogdet(a)[1].sum(), a, create_graph=True)
            L.tensor(0.0).item()
            error = None
        except RuntimeError as e:
            error = str(e).replace("torch.", "gradserve.")
        return _arr(sign), _arr(logabs), _arr(plain), error

    ours, theirs = grads(M), grads(torch)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    singular = theirs[0].reshape(-1) == 0
    for o, t, s in zip(ours[2].reshape(-1, *ours[2].shape[-2:]),
                       theirs[2].reshape(-1, *theirs[2].shape[-2:]), singular, strict=True):
        if s:  # not differentiable there: both give infinities or NaNs, in their own places
            assert not np.isfinite(o).all() and not np.isfinite(t).all()
        else:
            np.testing.assert_allclose(o, t, rtol=1e-10)
    assert ours[3] == theirs[3] is not None


def _graph(fn, rename):
    """torch's grad_fn as (type name, (the same for each input with a node)); None: none."""
    if fn is None:
        return None
    name = type(fn).__name__
    return (rename.get(name, name),
            tuple(_graph(n, rename) for n, _ in fn.next_functions if n is not None))


def _described(graph: dict, rename):
    """The same from gs.viz.graph's description (a session's server describes the gradient's
    whole graph there; the client's image of it knows its top node by name only)."""
    nodes, edges = {n["id"]: n for n in graph["nodes"]}, graph["edges"]
    if not nodes:
        return None

    def build(i):
        node = nodes[i]
        name = "AccumulateGrad" if node["kind"] == "leaf" else node["name"]
        return rename.get(name, name), tuple(build(a) for a, b in edges if b == i)

    return build(graph["nodes"][0]["id"])


def _det_grad_graph(L, name):
    a = L.tensor(SINGULAR[name], dtype=L.float64, requires_grad=True)
    g, = L.autograd.grad((L.linalg.det(a) * 1.5).sum(), a, create_graph=True)
    if L is torch:
        return _graph(g.grad_fn, {})
    return _described(L.viz.graph(g).to_dict(), {})


# the whole graph is torch's: linalg_solve's, the SVD cofactors' of one matrix, or for a batch
# with singular matrices torch's masked_fmap (IndexBackward0 and IndexPutBackward0) and its
# matmul's bmm, `U * D` laid out as U (column-major), so its reshape is a ReshapeAlias
SAME_GRAPH = ["nonsingular", "rank1_2x2", "rank2_3x3", "rank1_3x3", "zero_2x2", "zero_row",
              "zero_column", "rank3_4x4", "zero_1x1", "batch_nonsingular", "batch_mixed",
              "batch_singular"]
SINGULAR["batch_nonsingular"] = [[[2.0, 1.0], [1.0, 3.0]], [[1.0, 2.0], [2.0, 5.0]]]
SINGULAR["batch_singular"] = [[[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [1.0, 1.0]]]


@pytest.mark.parametrize("name", SAME_GRAPH)
def test_det_double_backward_graph_is_torchs(M, name):
    """create_graph: torch's linalg_det_backward node for node (LinalgSolveExBackward0 over
    transposes and a DiagEmbedBackward0; at |det| < 100 eps the SVD cofactors through
    LinalgSvdBackward0, LinalgDetBackward0 of U and Vh, cumprods, flips and an MmBackward0)."""
    assert _det_grad_graph(M, name) == _det_grad_graph(torch, name)


def test_svd_factors_are_laid_out_as_torchs(M):
    """U and Vh column by column (LAPACK's), so reshaping them copies as torch's does."""
    for shape, full in (((2, 4, 3), True), ((3, 4), False), ((2, 3, 4), False)):
        a = rng_matrix(shape)
        for L in (M, torch):
            u, s, vh = L.linalg.svd(L.tensor(a, requires_grad=True), full_matrices=full)
            got = [tuple(u.stride()), tuple(vh.stride()), tuple(s.stride()),
                   type(u.reshape(-1).grad_fn).__name__]
            if L is M:
                ours = got
        assert ours == got


def test_svd_factors_are_stored_as_torchs(M):
    """Their memory too: an in-place random fill visits U in torch's (column) order."""
    fills = []
    for L in (M, torch):
        u = L.linalg.svd(L.tensor(rng_matrix((2, 3, 3)), dtype=L.float32)).U
        L.manual_seed(3)
        fills.append(np.asarray(u.normal_().tolist()))
    np.testing.assert_allclose(fills[0], fills[1], rtol=1e-6)


def rng_matrix(shape):
    return np.random.default_rng(5).standard_normal(shape)
