"""linalg.lstsq's `driver=` as torch 2.13 on the CPU (gels, gelsy, gelsd, gelss; None is
gelsy), on both tensor kinds (`M`): the solution, residuals (filled when m > n except for
gelsy, and for gelsd/gelss only where every matrix has full column rank), rank and singular
values with torch's shapes, dtypes and values; rcond's meaning per driver; gels's error at an
exactly singular R; torch's argument errors; gradients through the solution and the
residuals (float64 gradchecks, second order included: tests/engine/test_gradcheck.py).

Where gelsy truncates the rank, torch 2.13's CPU build hands LAPACK an uninitialised pivot
array, so its answer varies from call to call; there LAPACK's gelsy with the pivots zeroed
(scipy's call of the same routine) is the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg  # the oracle for gelsy where it truncates (see above)
import torch  # the oracle

DRIVERS = [None, "gels", "gelsy", "gelsd", "gelss", "GELSD"]
SHAPES = [((5, 3), (5, 2)), ((5, 3), (5,)), ((2, 5, 3), (2, 5)), ((2, 5, 3), (2, 5, 2)),
          ((3, 5), (3, 2)), ((4, 4), (4, 1)), ((2, 3, 5), (2, 3)), ((1, 5, 3), (4, 5, 2)),
          ((4, 1, 5, 3), (1, 5, 2)), ((5, 0), (5, 2)), ((0, 3), (0, 2)),
          ((2, 0, 5, 3), (2, 0, 5, 2))]
rng = np.random.default_rng(21)


def _run(lib, a, b, rcond=None, driver=None, grad=True):
    ta = lib.tensor(a, requires_grad=grad)
    tb = lib.tensor(b, requires_grad=grad)
    return ta, tb, lib.linalg.lstsq(ta, tb, rcond, driver=driver)


def _np(t):
    return np.asarray(t.detach().cpu().numpy())


def _same_outputs(ours, theirs, tol=1e-10):
    for name, o, t in zip(("solution", "residuals", "rank", "singular_values"), ours, theirs,
                          strict=True):
        assert tuple(o.shape) == tuple(t.shape), name
        assert str(o.dtype).split(".")[-1] == str(t.dtype).split(".")[-1], name
        assert o.requires_grad == t.requires_grad, name
        np.testing.assert_allclose(_np(o), _np(t), rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_outputs_and_gradients_match_torch(M, driver, shapes):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    oa, ob, ours = _run(M, a, b, driver=driver)
    ta, tb, theirs = _run(torch, a, b, driver=driver)
    _same_outputs(ours, theirs)
    assert ours.residuals.grad_fn is ours.solution.grad_fn
    assert type(ours.solution.grad_fn).__name__ == "LinalgLstsqBackward0"
    ws = rng.standard_normal(tuple(theirs.solution.shape))
    wr = rng.standard_normal(tuple(theirs.residuals.shape))
    for lib, r in ((M, ours), (torch, theirs)):
        ((r.solution * lib.tensor(ws)).sum() + (r.residuals * lib.tensor(wr)).sum()).backward()
    for mine, torchs in ((oa, ta), (ob, tb)):
        np.testing.assert_allclose(_np(mine.grad), _np(torchs.grad), rtol=1e-8, atol=1e-10)


def _graded(m, n, decay):
    """A matrix whose singular values fall by `decay` per step: rcond thresholds fall between
    them, never on one."""
    q1, _ = np.linalg.qr(rng.standard_normal((m, m)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = decay ** np.arange(min(m, n))
    return (q1[:, :len(s)] * s) @ q2[:len(s)]


@pytest.mark.parametrize("driver", ["gelsd", "gelss"])
@pytest.mark.parametrize("rcond", [None, -1.0, 0.0, 1e-3, 0.05, 0.3, 1.0, 2.0])
def test_svd_drivers_read_rcond_as_lapack(M, driver, rcond):
    """gelss drops singular values <= rcond * s_max (machine precision when rcond < 0, so
    rcond >= 1 keeps none); gelsd uses eps where rcond is not in (0, 1)."""
    a, b = _graded(7, 4, 0.13), rng.standard_normal((7, 2))
    _same_outputs(_run(M, a, b, rcond, driver, grad=False)[2],
                  _run(torch, a, b, rcond, driver, grad=False)[2], tol=1e-8)


@pytest.mark.parametrize("driver", ["gelsd", "gelss"])
def test_rank_deficient_svd_drivers_give_the_minimum_norm_solution(M, driver):
    a = rng.standard_normal((2, 6, 4))
    a[1, :, 3] = a[1, :, 0] - 2 * a[1, :, 1]  # one matrix of rank 3: no residuals for any
    b = rng.standard_normal((2, 6, 2))
    ours, theirs = (_run(lib, a, b, driver=driver, grad=False)[2] for lib in (M, torch))
    assert tuple(theirs.residuals.shape) == (0,) and theirs.rank.tolist() == [4, 3]
    _same_outputs(ours, theirs, tol=1e-8)


@pytest.mark.parametrize("rcond", [None, 1e-3, 0.05, 0.3])
@pytest.mark.parametrize("shape", [(7, 4), (4, 6), (5, 5)])
def test_gelsy_truncates_as_lapacks_pivoted_qr(M, rcond, shape):
    m, n = shape
    for a in (_graded(m, n, 0.2), rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))):
        b = rng.standard_normal((m, 3))
        r = _run(M, a, b, rcond, "gelsy", grad=False)[2]
        cond = np.finfo(np.float64).eps * max(m, n) if rcond is None else rcond
        x, _, rank, _ = scipy.linalg.lstsq(a, b, cond=cond, lapack_driver="gelsy")
        assert int(r.rank.item()) == rank
        np.testing.assert_allclose(_np(r.solution), x, rtol=1e-8, atol=1e-10)


def test_gelsy_with_rcond_zero_lets_a_singular_r_in_as_torch(M):
    """rcond = 0 keeps every column: an exactly zero pivot divides by zero (no error)."""
    a = rng.standard_normal((5, 3))
    a[:, 1] = 0
    b = rng.standard_normal((5, 2))
    ours, theirs = (_run(lib, a, b, 0.0, "gelsy", grad=False)[2] for lib in (M, torch))
    assert int(ours.rank.item()) == int(theirs.rank.item()) == 3
    assert not np.isfinite(_np(ours.solution)).all()
    assert not np.isfinite(_np(theirs.solution)).all()


def test_gelsy_at_full_rank_is_torchs_with_any_pivots(M):
    """Full rank: one least-squares solution whatever the pivots, and torch's rank."""
    a, b = _graded(6, 4, 0.5), rng.standard_normal((6, 2))
    _same_outputs(_run(M, a, b, 1e-3, "gelsy", grad=False)[2],
                  _run(torch, a, b, 1e-3, "gelsy", grad=False)[2], tol=1e-9)


def test_float32(M):
    a = rng.standard_normal((3, 6, 4)).astype(np.float32)
    b = rng.standard_normal((3, 6, 2)).astype(np.float32)
    for driver in DRIVERS:
        _same_outputs(_run(M, a, b, driver=driver, grad=False)[2],
                      _run(torch, a, b, driver=driver, grad=False)[2], tol=2e-5)


def _gels_zero(shape, column, batch=None):
    a = rng.standard_normal(shape)
    a[..., :, column] = 0 if shape[-2] >= shape[-1] else a[..., :, column]
    if shape[-2] < shape[-1]:  # wide: an exactly zero row leaves LQ's pivot zero
        a[..., column, :] = 0
    if batch is not None:  # the other matrices full rank
        keep = np.ones(shape[:-2], bool)
        keep[batch] = False
        a[keep] = rng.standard_normal(a[keep].shape)
    return a


GELS_CASES = [
    lambda L: L.linalg.lstsq(L.tensor(_gels_zero((5, 3), 1)), L.ones(5, 2, dtype=L.float64),
                             driver="gels"),
    lambda L: L.linalg.lstsq(L.tensor(_gels_zero((3, 5), 2)), L.ones(3, dtype=L.float64),
                             driver="gels"),
    lambda L: L.linalg.lstsq(L.tensor(_gels_zero((3, 4, 3), 2, batch=1)),
                             L.ones(3, 4, 2, dtype=L.float64), driver="gels"),
]


@pytest.mark.parametrize("k", range(len(GELS_CASES)))
def test_gels_refuses_an_exactly_singular_r_as_torch(M, k):
    state = rng.bit_generator.state
    with pytest.raises(RuntimeError) as theirs:
        GELS_CASES[k](torch)
    rng.bit_generator.state = state  # the same matrix for both
    with pytest.raises(RuntimeError) as ours:
        GELS_CASES[k](M)
        M.current_session() is not None and M.current_session().synchronize()
    assert str(ours.value).split("\n")[0].removesuffix(" (raised by op") == str(theirs.value)


@pytest.mark.parametrize("driver", ["gels", "gelsy", "gelsd", "gelss"])
def test_an_all_zero_matrix(M, driver):
    """gels returns B zeroed (so zero residuals); the rank-revealing drivers rank 0."""
    b = rng.standard_normal((5, 2))
    _same_outputs(_run(M, np.zeros((5, 3)), b, driver=driver, grad=False)[2],
                  _run(torch, np.zeros((5, 3)), b, driver=driver, grad=False)[2])


ERRORS = [
    lambda L: L.linalg.lstsq(L.ones(3, 3), L.ones(3, 2), driver="gelsq"),
    lambda L: L.linalg.lstsq(L.ones(3, 3), L.ones(3, 2), driver="gelsd "),
    lambda L: L.linalg.lstsq(L.ones(3), L.ones(3)),
    lambda L: L.linalg.lstsq(L.ones(3, 3), L.ones(())),
    lambda L: L.linalg.lstsq(L.ones(3, 3, dtype=L.float64), L.ones(3, 3)),
    lambda L: L.linalg.lstsq(L.ones(3, 3, dtype=L.int64), L.ones(3, 3, dtype=L.int64)),
    lambda L: L.linalg.lstsq(L.ones(3, 3), L.ones(4)),
    lambda L: L.linalg.lstsq(L.ones(2, 5, 3), L.ones(1, 5)),
    lambda L: L.linalg.lstsq(L.ones(5, 3), L.ones(2, 5, 2)),
    lambda L: L.linalg.lstsq(L.ones(2, 5, 3), L.ones(5, 2)),
]


@pytest.mark.parametrize("k", range(len(ERRORS)))
def test_argument_errors_read_like_torch(M, k):
    with pytest.raises(RuntimeError) as theirs:
        ERRORS[k](torch)
    with pytest.raises(RuntimeError) as ours:
        ERRORS[k](M)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("driver", ["gels", "gelsd"])
def test_residuals_alone_reach_a_and_b(M, driver):
    """Filled residuals carry a gradient (2 (AX - B) gL X^T and -2 (AX - B) gL); a session's
    image of the graph knows it without asking (its walk without data)."""
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    grads = []
    for lib in (M, torch):
        ta, tb, r = _run(lib, a, b, driver=driver)
        r.residuals.sum().backward()
        grads.append((_np(ta.grad), _np(tb.grad)))
    for mine, torchs in zip(*grads, strict=True):
        np.testing.assert_allclose(mine, torchs, rtol=1e-8, atol=1e-10)


def test_rank_deficient_gelsd_residuals_are_empty_and_carry_nothing(M):
    a = rng.standard_normal((6, 3))
    a[:, 2] = a[:, 0]
    for lib in (M, torch):
        ta, tb, r = _run(lib, a, rng.standard_normal((6, 2)), driver="gelsd")
        assert tuple(r.residuals.shape) == (0,) and r.residuals.requires_grad
        r.residuals.sum().backward()
        assert ta.grad is None and tb.grad is None


def test_the_solution_is_saved_for_backward(M):
    """torch keeps the solution for the residuals' gradient: changing it in place is caught."""
    messages = []
    for lib in (M, torch):
        x = _run(lib, rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))[2].solution
        x.add_(1)
        with pytest.raises(RuntimeError) as e:
            x.sum().backward()
            lib is not torch and lib.current_session() is not None and \
                lib.current_session().synchronize()
        messages.append(str(e.value).split("\n")[0].removesuffix(" (raised by op"))
    assert messages[0].replace("gradserve.", "torch.") == messages[1]  # dtypes print so
