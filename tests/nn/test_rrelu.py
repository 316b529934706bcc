"""F.rrelu and nn.RReLU against torch, in-process and on a real session: a seeded training
call draws torch's slopes (bit for bit, and leaves the stream where torch's is), eval uses the
mean slope; grad_fn names and edges are torch's (RreluWithNoiseBackward0, ...Backward1 in
place); float64 gradchecks of first and second order."""

from __future__ import annotations

import gradserve.nn as nn
import gradserve.nn.functional as F
import numpy as np
import pytest
import torch
from gradserve import engine
from gradserve.engine.gradcheck import check_grads

TF = torch.nn.functional
DTYPES = [(torch.float32, engine.float32), (torch.float64, engine.float64)]


@pytest.fixture(params=["engine", "remote"])
def home(request):
    return engine if request.param == "engine" else request.getfixturevalue("session")


def _names(fn):
    return [type(f).__name__ if f is not None else None for f, _ in fn.next_functions]


@pytest.mark.parametrize("dtypes", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("bounds", [(1 / 8, 1 / 3), (0.05, 0.4), (0.2, 0.2)])
def test_training_draws_torchs_slopes(home, dtypes, bounds):
    tdt, gdt = dtypes
    torch.manual_seed(11)
    tx = torch.randn(7, 9, dtype=tdt, requires_grad=True)
    ty = TF.rrelu(tx, *bounds, training=True)
    ty.backward(torch.ones_like(ty))
    t_after = torch.rand(4)
    home.manual_seed(11)
    x = home.randn(7, 9, dtype=gdt, requires_grad=True)
    y = F.rrelu(x, *bounds, training=True)
    y.backward(home.ones(7, 9, dtype=gdt))
    after = home.rand(4)
    np.testing.assert_array_equal(x.detach().numpy(), tx.detach().numpy())
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(after.numpy(), t_after.numpy())  # as many draws as torch
    assert type(y.grad_fn).__name__ == type(ty.grad_fn).__name__ == "RreluWithNoiseBackward0"
    assert _names(y.grad_fn) == _names(ty.grad_fn) == ["AccumulateGrad"]


def test_module_trains_randomly_and_evaluates_with_the_mean_slope(home):
    values = np.array([[-3.0, -1.0, 0.0, 2.0], [-0.5, 4.0, -2.0, np.nan]], np.float32)
    ours = nn.RReLU(0.1, 0.3)
    theirs = torch.nn.RReLU(0.1, 0.3)
    assert repr(ours) == repr(theirs) == "RReLU(lower=0.1, upper=0.3)"
    assert repr(nn.RReLU(inplace=True)) == repr(torch.nn.RReLU(inplace=True))
    torch.manual_seed(5)
    t_train = theirs(torch.tensor(values))
    home.manual_seed(5)
    train = ours(home.tensor(values))
    np.testing.assert_array_equal(train.numpy(), t_train.numpy())
    ours.eval()
    theirs.eval()
    x, tx = home.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    y, ty = ours(x), theirs(tx)
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    y.nan_to_num().sum().backward()
    ty.nan_to_num().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    assert type(y.grad_fn).__name__ == type(ty.grad_fn).__name__
    # the functional default is eval (training=False), as torch's
    np.testing.assert_array_equal(F.rrelu(home.tensor(values)).numpy(),
                                  TF.rrelu(torch.tensor(values)).numpy())


@pytest.mark.parametrize("training", [True, False])
def test_in_place(home, training):
    torch.manual_seed(2)
    tx = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    ty = tx * 1.5
    tout = TF.rrelu(ty, training=training, inplace=True)
    home.manual_seed(2)
    x = home.randn(5, 4, dtype=engine.float64, requires_grad=True)
    y = x * 1.5
    out = F.rrelu(y, training=training, inplace=True)
    assert out is y and tout is ty
    assert type(y.grad_fn).__name__ == type(ty.grad_fn).__name__ == "RreluWithNoiseBackward1"
    assert _names(y.grad_fn) == _names(ty.grad_fn) == ["MulBackward0"]
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-14)


def test_errors_are_torchs(home):
    ints = home.tensor([1, -2])
    for training, kernel in ((True, "rrelu_with_noise_out_cpu"), (False, "leaky_relu_cpu")):
        with pytest.raises(NotImplementedError) as ours:
            F.rrelu(ints, training=training).numpy()
        with pytest.raises(NotImplementedError) as theirs:
            TF.rrelu(torch.tensor([1, -2]), training=training)
        assert str(ours.value) == str(theirs.value) == f"\"{kernel}\" not implemented for 'Long'"
    half = home.tensor([1.0, -2.0], dtype=engine.float16)
    with pytest.raises(NotImplementedError, match="\"rrelu_with_noise_out_cpu\" not "
                                                  "implemented for 'Half'"):
        F.rrelu(half, training=True).numpy()
    with pytest.raises(NotImplementedError, match="for 'Half'"):
        TF.rrelu(torch.tensor([1.0, -2.0], dtype=torch.float16), training=True)
    np.testing.assert_array_equal(  # eval is leaky_relu, which torch has for half
        F.rrelu(half).numpy(), TF.rrelu(torch.tensor([1.0, -2.0], dtype=torch.float16)).numpy())
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal to the "
                                           "upper bound"):
        F.rrelu(home.ones(3), 0.5, 0.1)
    with pytest.raises(RuntimeError, match="Lower bound should be less"):
        TF.rrelu(torch.ones(3), 0.5, 0.1)


def _leaf(*shape, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape)
    values[np.abs(values) < 0.05] = 0.3  # away from the kink, where the gradient jumps
    return engine.tensor(values, dtype=engine.float64, requires_grad=True)


def test_gradcheck_first_and_second_order():
    x = _leaf(3, 4)
    noise = x.detach()._op("rrelu_noise", x.detach(), lower=0.1, upper=0.4)
    check_grads(lambda x: x._op("rrelu_with_noise", x, noise, lower=0.1, upper=0.4), [x],
                order=2)
    check_grads(lambda x: F.rrelu(x, 0.1, 0.4), [x], order=2)  # eval
    check_grads(lambda x: F.rrelu(x * 1.0, 0.2, 0.2, training=True), [x], order=2)

    def in_place(x, *noise):
        y = x * 1.0
        return y._inplace("rrelu_with_noise_", *noise, lower=0.1, upper=0.4)

    check_grads(lambda x: in_place(x, noise), [x], order=2)
    check_grads(in_place, [x], order=2)
