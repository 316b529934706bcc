"""batch_norm with running statistics (evaluation) is torch's one NativeBatchNormBackward0
node with edges to input, weight and bias (None for a missing affine, none for the running
statistics), and linalg.lstsq's empty residuals are an output of the solution's
LinalgLstsqBackward0, as torch's: on engine tensors and in a live session, with torch's
values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle

from .test_grad_fn_types import _graph

rng = np.random.default_rng(7)
X = rng.standard_normal((4, 3, 2))
W, B = rng.standard_normal(3), rng.standard_normal(3)
MEAN, VAR = rng.standard_normal(3), rng.random(3) + 0.5

CASES = {
    "affine": lambda M, x, w, b, m, v: M.nn.functional.batch_norm(x, m, v, w, b),
    "no_affine": lambda M, x, w, b, m, v: M.nn.functional.batch_norm(x, m, v),
    "weight_only": lambda M, x, w, b, m, v: M.nn.functional.batch_norm(x, m, v, w, eps=1e-3),
    "bias_only": lambda M, x, w, b, m, v: M.nn.functional.batch_norm(x, m, v, None, b),
    "2d_input": lambda M, x, w, b, m, v: M.nn.functional.batch_norm(x[:, :, 0], m, v, w, b),
    "4d_view": lambda M, x, w, b, m, v: M.nn.functional.batch_norm(x.reshape(2, 3, 2, 2), m, v,
                                                                   w, b),
}


def _run(M, case):
    x = M.tensor(X, requires_grad=True)
    w, b = M.tensor(W, requires_grad=True), M.tensor(B, requires_grad=True)
    y = CASES[case](M, x, w, b, M.tensor(MEAN), M.tensor(VAR))
    return y, (x, w, b)


@pytest.mark.parametrize("case", sorted(CASES))
def test_eval_batch_norm_is_torchs_one_node(M, case):
    ours, ours_in = _run(M, case)
    theirs, theirs_in = _run(torch, case)
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)
    np.testing.assert_allclose(np.asarray(ours.tolist()), theirs.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    (ours * ours).sum().backward()
    (theirs * theirs).sum().backward()
    for mine, torchs in zip(ours_in, theirs_in, strict=True):
        assert (mine.grad is None) == (torchs.grad is None)
        if torchs.grad is not None:
            np.testing.assert_allclose(np.asarray(mine.grad.tolist()), torchs.grad.numpy(),
                                       rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (4, 3)), ("BatchNorm1d", (4, 3, 2)),
                                       ("BatchNorm2d", (2, 3, 2, 2))])
def test_an_eval_batch_norm_module_is_torchs(M, cls, shape):
    results = []
    for lib in (M, torch):
        lib.manual_seed(0)
        layer = getattr(lib.nn, cls)(3, dtype=lib.float64)
        x = lib.tensor(X.reshape(-1)[:int(np.prod(shape))].reshape(shape), requires_grad=True)
        layer(x)  # one training step moves the running statistics
        layer.eval()
        y = layer(x)
        y.pow(2).sum().backward()
        results.append((_graph(y.grad_fn), np.asarray(y.tolist()), np.asarray(x.grad.tolist()),
                        np.asarray(layer.weight.grad.tolist())))
    (g1, y1, gx1, gw1), (g2, y2, gx2, gw2) = results
    assert g1 == g2 and g1[0] == "NativeBatchNormBackward0"
    for a, b in ((y1, y2), (gx1, gx2), (gw1, gw2)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_eval_batch_norm_gradchecks_to_second_order():
    from gradserve import engine
    from gradserve.engine.gradcheck import check_grads

    x = engine.tensor(X, requires_grad=True)
    w, b = engine.tensor(W, requires_grad=True), engine.tensor(B, requires_grad=True)
    m, v = engine.tensor(MEAN), engine.tensor(VAR)
    import gradserve.nn.functional as F

    check_grads(lambda x, w, b: F.batch_norm(x, m, v, w, b), [x, w, b], order=2)
    check_grads(lambda x: F.batch_norm(x, m, v), [x], order=2)


@pytest.mark.parametrize("shapes", [((5, 3), (5, 2)), ((5, 3), (5,)), ((2, 5, 3), (2, 5, 2))])
def test_lstsq_residuals_are_an_output_of_the_solutions_node(M, shapes):
    sa, sb = shapes
    for lib in (M, torch):
        a = lib.tensor(rng.standard_normal(sa), requires_grad=True)
        b = lib.tensor(rng.standard_normal(sb), requires_grad=True)
        r = lib.linalg.lstsq(a, b)
        assert r.residuals.grad_fn is r.solution.grad_fn
        assert type(r.residuals.grad_fn).__name__ == "LinalgLstsqBackward0"
        assert tuple(r.residuals.shape) == (0,) and r.residuals.requires_grad
        r.residuals.sum().backward()  # no gradient reaches A or B through the residuals
        assert a.grad is None and b.grad is None
        r = lib.linalg.lstsq(a.detach(), b.detach())
        assert r.residuals.grad_fn is None and not r.residuals.requires_grad
