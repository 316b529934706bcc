"""Linear algebra against torch (API.md section 7), on both tensor kinds: the products
(mm bmm mv dot vdot outer addmm addmv addbmm baddbmm matrix_power tensordot kron cross cdist
trace) and gs.linalg: values, gradients, grad_fn names, and torch's errors for bad shapes.
(float64 gradchecks of every new op: tests/engine/test_gradcheck.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle

rng = np.random.default_rng(7)
A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
V, W = rng.standard_normal(3), rng.standard_normal(3)
T, U = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3, 3))
S = A @ A.T + 3 * np.eye(3)
R23 = rng.standard_normal((2, 3))

# name -> fn(L, t) with t(x) making a leaf; torch's grad_fn name is compared unless listed
CASES = {
    "mm": lambda L, t: t(A).mm(t(B)),
    "bmm": lambda L, t: t(T).bmm(t(U)),
    "mv": lambda L, t: t(A).mv(t(V)),
    "dot": lambda L, t: t(V).dot(t(W)),
    "vdot": lambda L, t: L.vdot(t(V), t(W)),
    "outer": lambda L, t: L.outer(t(V), t(W)),
    "addmm": lambda L, t: L.addmm(t(A), t(A), t(B), beta=0.5, alpha=2),
    "addmv": lambda L, t: L.addmv(t(V), t(A), t(W)),
    "addbmm": lambda L, t: L.addbmm(t(A), t(T), t(U)),
    "baddbmm": lambda L, t: L.baddbmm(t(T), t(T), t(U), alpha=0.3),
    "matrix_power2": lambda L, t: L.matrix_power(t(A), 2),
    "matrix_power5": lambda L, t: t(A).matrix_power(5),
    "matrix_power-2": lambda L, t: L.linalg.matrix_power(t(A), -2),
    "tensordot": lambda L, t: L.tensordot(t(T), t(A), dims=2),
    "tensordot_lists": lambda L, t: L.tensordot(t(T), t(U), dims=([1, 0], [2, 0])),
    "kron": lambda L, t: L.kron(t(A), t(R23)),
    "cross": lambda L, t: L.cross(t(A), t(B), dim=1),
    "linalg_cross": lambda L, t: L.linalg.cross(t(R23), t(A[:2])),
    "cdist": lambda L, t: L.cdist(t(A), t(R23)),
    "cdist1": lambda L, t: L.cdist(t(A), t(B), p=1),
    "trace": lambda L, t: t(R23).trace(),
    "norm": lambda L, t: L.linalg.norm(t(A)),
    "norm_ord": lambda L, t: L.linalg.norm(t(V), 3),
    "vector_norm": lambda L, t: L.linalg.vector_norm(t(T), 1, dim=(1, 2)),
    "matrix_norm": lambda L, t: L.linalg.matrix_norm(t(A)),
    "matrix_norm2": lambda L, t: L.linalg.matrix_norm(t(A), 2),
    "matrix_norm_nuc": lambda L, t: L.linalg.matrix_norm(t(A), "nuc"),
    "matrix_norm1": lambda L, t: L.linalg.matrix_norm(t(T), 1),
    "matrix_norm_inf": lambda L, t: L.linalg.matrix_norm(t(A), float("inf"), keepdim=True),
    "inv": lambda L, t: L.linalg.inv(t(A)),
    "det": lambda L, t: L.linalg.det(t(T)),
    "slogdet": lambda L, t: L.linalg.slogdet(t(A)).logabsdet,
    "solve": lambda L, t: L.linalg.solve(t(A), t(B)),
    "solve_vector": lambda L, t: L.linalg.solve(t(A), t(V)),
    "solve_right": lambda L, t: L.linalg.solve(t(A), t(R23), left=False),
    "cholesky": lambda L, t: L.linalg.cholesky(t(S)),
    "cholesky_upper": lambda L, t: L.linalg.cholesky(t(S), upper=True),
    "eigh_values": lambda L, t: L.linalg.eigh(t(S)).eigenvalues,
    "eigh_vectors": lambda L, t: L.linalg.eigh(t(S)).eigenvectors.abs(),
    "eigvalsh": lambda L, t: L.linalg.eigvalsh(t(S)),
    "svdvals": lambda L, t: L.linalg.svdvals(t(R23)),
    "svd_tall": lambda L, t: L.linalg.svd(t(R23.T), full_matrices=False).U.abs(),
    "svd_wide": lambda L, t: L.linalg.svd(t(R23)).Vh[:2].abs(),
    "svd_s": lambda L, t: L.linalg.svd(t(T)).S,
    "qr_tall": lambda L, t: L.linalg.qr(t(R23.T)).Q,
    "qr_wide": lambda L, t: L.linalg.qr(t(R23)).R,
    "qr_square": lambda L, t: L.linalg.qr(t(A)).Q @ L.linalg.qr(t(B)).R,
    "pinv": lambda L, t: L.linalg.pinv(t(R23)),
    "lstsq": lambda L, t: L.linalg.lstsq(t(np.vstack([A, R23])), t(R23.T[:, :2].repeat(
        5, 0)[:5])).solution,
}
# compositions whose last node torch names otherwise (values and gradients still compared)
OTHER_NAMES = {"kron", "cdist", "cdist1", "matrix_norm1", "matrix_norm_inf", "solve_right",
               "matrix_power-2", "svd_tall", "svd_wide", "pinv", "lstsq"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_linalg_matches_torch(M, name):
    fn = CASES[name]
    ours_leaves, their_leaves = [], []

    def ours(x):
        ours_leaves.append(M.tensor(x, requires_grad=True))
        return ours_leaves[-1]

    def theirs(x):
        their_leaves.append(torch.tensor(x, requires_grad=True))
        return their_leaves[-1]

    o, t = fn(M, ours), fn(torch, theirs)
    np.testing.assert_allclose(o.detach().cpu().numpy(), t.detach().numpy(), rtol=1e-9,
                               atol=1e-10)
    if name not in OTHER_NAMES:
        assert type(o.grad_fn).__name__ == type(t.grad_fn).__name__ or \
            o.grad_fn.name() == type(t.grad_fn).__name__
    weights = np.linspace(-1, 1, t.numel()).reshape(t.shape)
    (o * M.tensor(weights)).sum().backward()
    (t * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours_leaves, their_leaves, strict=True):
        np.testing.assert_allclose(a.grad.cpu().numpy(), b.grad.numpy(), rtol=1e-7, atol=1e-9)


def test_matrix_rank_and_integer_products(M):
    for L in (M, torch):
        assert L.linalg.matrix_rank(L.tensor(np.outer(V, W))).item() == 1
        assert L.linalg.matrix_rank(L.tensor(A), hermitian=False).item() == 3
    i = np.arange(6).reshape(2, 3)
    assert M.tensor(i).mm(M.tensor(i.T)).tolist() == torch.tensor(i).mm(
        torch.tensor(i.T)).tolist()


ERRORS = [
    lambda L: L.ones(2, 3).mm(L.ones(4, 5)),
    lambda L: L.ones(3).mm(L.ones(3, 3)),
    lambda L: L.ones(2, 3).mm(L.ones(3)),
    lambda L: L.ones(2, 3, 4).bmm(L.ones(2, 5, 6)),
    lambda L: L.ones(3, 4).bmm(L.ones(3, 4, 6)),
    lambda L: L.ones(2, 3).mv(L.ones(4)),
    lambda L: L.ones(3).mv(L.ones(3)),
    lambda L: L.ones(3).dot(L.ones(4)),
    lambda L: L.ones(3, 1).dot(L.ones(3)),
    lambda L: L.ones(3).dot(L.ones(3, dtype=L.float64)),
    lambda L: L.addmm(L.ones(2, 2), L.ones(2, 3), L.ones(4, 2)),
    lambda L: L.addmm(L.ones(3, 3), L.ones(2, 3), L.ones(3, 2)),
    lambda L: L.ones(3).trace(),
    lambda L: L.outer(L.ones(2, 2), L.ones(2)),
    lambda L: L.linalg.inv(L.ones(2, 3)),
    lambda L: L.linalg.inv(L.ones(3)),
    lambda L: L.linalg.inv(L.zeros(3, 3)),
    lambda L: L.linalg.inv(L.ones(2, 2, dtype=L.int64)),
    lambda L: L.linalg.det(L.ones(2, 3)),
    lambda L: L.linalg.slogdet(L.ones(2, 3)),
    lambda L: L.linalg.solve(L.eye(3), L.ones(4)),
    lambda L: L.linalg.cholesky(-L.eye(3)),
    lambda L: L.linalg.cholesky(L.tensor([[1.0, 2.0], [2.0, 1.0]])),
    lambda L: L.linalg.eigh(L.ones(2, 3)),
    lambda L: L.linalg.cross(L.ones(3, 2), L.ones(3, 2)),
    lambda L: L.matrix_power(L.ones(2, 3), 2),
    lambda L: L.linalg.matrix_norm(L.ones(3)),
    lambda L: L.linalg.vector_norm(L.ones(2, dtype=L.int64)),
    lambda L: L.linalg.svd(L.ones(3)),
    lambda L: L.linalg.pinv(L.ones(3)),
    lambda L: L.linalg.lstsq(L.ones(3, 3), L.ones(4, 2)),
    lambda L: L.linalg.qr(L.ones(3)),
    lambda L: L.linalg.qr(L.ones(3, 3), mode="x"),
    lambda L: L.linalg.qr(L.ones(3, 2, requires_grad=True), mode="r").R.sum().backward(),
    lambda L: L.linalg.qr(L.ones(3, 2, requires_grad=True), mode="complete").Q.sum().backward(),
]


@pytest.mark.parametrize("k", range(len(ERRORS)))
def test_errors_read_like_torch(M, k):
    with pytest.raises(RuntimeError) as theirs:
        ERRORS[k](torch)
    with pytest.raises(RuntimeError) as ours:
        ERRORS[k](M)
        M.current_session() is not None and M.current_session().synchronize()
    assert str(ours.value).split("\n")[0].removesuffix(
        " (raised by op") == str(theirs.value).split("\n")[0]
