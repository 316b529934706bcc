"""gradserve.nn.functional: values against numpy, gradients against central differences."""

import gradserve.nn.functional as F
import numpy as np
import pytest
from gradserve import engine

RNG = np.random.default_rng(0)


def _randn(*shape):
    return RNG.standard_normal(shape)


def _t(a):
    """float64 for float arrays: engine.tensor would make them float32."""
    a = np.asarray(a)
    return engine.tensor(a, dtype=engine.float64 if a.dtype.kind == "f" else None)


# -- gradients ---------------------------------------------------------------------------------
ELEMENTWISE = {
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
def test_elementwise_gradients(gradcheck, name, shape):
    x = _randn(*shape)
    x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink
    gradcheck(ELEMENTWISE[name], x)


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -1)])
def test_softmax_gradients(gradcheck, fn, shape, dim):
    gradcheck(lambda x: fn(x, dim=dim), _randn(*shape))


@pytest.mark.parametrize("x_shape", [(4, 3), (3,), (2, 5, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(gradcheck, x_shape, bias):
    arrays = [_randn(*x_shape), _randn(2, 3)] + ([_randn(2)] if bias else [])
    gradcheck(F.linear, *arrays)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6,), (3, 4)])
def test_mse_gradients(gradcheck, reduction, shape):
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), _randn(*shape), _randn(*shape))


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore", [False, True])
def test_class_loss_gradients(gradcheck, fn, reduction, ignore):
    target = np.array([0, 2, 1, 2, 0])
    if ignore:
        target[1] = -100
    logits = _randn(5, 3)
    if fn is F.nll_loss:
        # nll_loss takes log-probabilities; the check differentiates through log_softmax
        def loss(x):
            return F.nll_loss(F.log_softmax(x, dim=1), _t(target), reduction=reduction)
    else:
        def loss(x):
            return F.cross_entropy(x, _t(target), reduction=reduction)
    gradcheck(loss, logits)


def test_cross_entropy_of_a_single_sample(gradcheck):
    gradcheck(lambda x: F.cross_entropy(x, _t(2)), _randn(4))


# -- values ------------------------------------------------------------------------------------
def _log_softmax_np(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def test_values_match_numpy():
    x = _randn(4, 3)
    w, b = _randn(2, 3), _randn(2)
    tx = _t(x)
    np.testing.assert_allclose(F.relu(tx).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(F.sigmoid(tx).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(F.tanh(tx).numpy(), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(F.log_softmax(tx, 1).numpy(), _log_softmax_np(x, 1), rtol=1e-6)
    np.testing.assert_allclose(F.softmax(tx, 0).numpy(), np.exp(_log_softmax_np(x, 0)),
                               rtol=1e-6)
    np.testing.assert_allclose(F.linear(tx, _t(w), _t(b)).numpy(), x @ w.T + b, rtol=1e-6)
    np.testing.assert_allclose(F.linear(tx, _t(w)).numpy(), x @ w.T, rtol=1e-6)


def test_loss_values_match_numpy():
    x, y = _randn(5, 3), _randn(5, 3)
    target = np.array([0, 2, 1, 2, -100])
    keep = target != -100
    logp = _log_softmax_np(x, 1)
    picked = -logp[np.arange(5), np.where(keep, target, 0)] * keep
    ce = F.cross_entropy(_t(x), _t(target), reduction="none").numpy()
    np.testing.assert_allclose(ce, picked, rtol=1e-6)
    np.testing.assert_allclose(F.cross_entropy(_t(x), _t(target)).item(),
                               picked.sum() / keep.sum(), rtol=1e-6)
    np.testing.assert_allclose(F.nll_loss(_t(logp), _t(target), reduction="sum").item(),
                               picked.sum(), rtol=1e-6)
    np.testing.assert_allclose(F.mse_loss(_t(x), _t(y)).item(), ((x - y) ** 2).mean(),
                               rtol=1e-6)
    np.testing.assert_allclose(F.mse_loss(_t(x), _t(y), reduction="sum").item(),
                               ((x - y) ** 2).sum(), rtol=1e-6)


def test_linear_is_one_fused_op():
    x = engine.randn(4, 3)
    w = engine.randn(2, 3, requires_grad=True)
    assert F.linear(x, w, engine.zeros(2)).grad_fn.name() == "AddmmBackward0"
    assert F.linear(x, w).grad_fn.name() == "MmBackward0"
    loss = F.cross_entropy(engine.randn(4, 3, requires_grad=True), engine.tensor([0, 1, 2, 0]))
    assert loss.grad_fn.name() == "NllLossBackward0"  # torch's name for the fused loss


def test_loss_errors():
    logits = engine.randn(3, 4)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(logits, engine.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(RuntimeError, match="expected scalar type Long"):
        F.cross_entropy(logits, engine.tensor([0.0, 1.0, 2.0]))
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(engine.randn(3, 1), engine.randn(3))


def test_softmax_without_dim_warns_and_uses_torchs_rule():
    x = engine.randn(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = F.softmax(x)
    np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, rtol=1e-6)


# -- dropout -----------------------------------------------------------------------------------
def test_dropout_identity_cases():
    x = engine.randn(10)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros(10, np.float32))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            F.dropout(x, p)


def test_dropout_mask_scale_rate_and_gradient():
    engine.manual_seed(3)
    x = engine.ones(20000, dtype=engine.float64, requires_grad=True)
    y = F.dropout(x, p=0.25)
    values = y.detach().numpy()
    assert set(np.unique(values)) <= {0.0, 1 / 0.75}
    assert abs((values == 0).mean() - 0.25) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # d(x*mask)/dx = mask


def test_dropout_is_reproducible_under_a_seed():
    engine.manual_seed(7)
    a = F.dropout(engine.ones(50)).numpy()
    engine.manual_seed(7)
    b = F.dropout(engine.ones(50)).numpy()
    np.testing.assert_array_equal(a, b)
