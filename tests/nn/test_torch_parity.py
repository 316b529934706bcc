"""Parity with PyTorch (skipped when torch is not installed): losses, gradients, optimizer
steps and reprs computed by both libraries from the same numbers."""

import gradserve.nn as nn
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI
from gradserve import engine

TF = torch.nn.functional

RNG = np.random.default_rng(0)


def _pair(a, requires_grad=True):
    """The same float64 values as an engine tensor and a torch tensor."""
    a = np.asarray(a, dtype=np.float64)
    return (engine.tensor(a, dtype=engine.float64, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _grads_match(ours, theirs, rtol=1e-10):
    for o, t in zip(ours, theirs, strict=True):
        if t.grad is None:  # an input the expression does not use
            assert o.grad is None
            continue
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=1e-12)


TARGET = np.array([2, 0, 1, -100, 1])
LOSSES = [
    ("mse_mean", lambda F_, x, y, t: F_.mse_loss(x, y)),
    ("mse_sum", lambda F_, x, y, t: F_.mse_loss(x, y, reduction="sum")),
    ("mse_none", lambda F_, x, y, t: F_.mse_loss(x, y, reduction="none")),
    ("ce_mean", lambda F_, x, y, t: F_.cross_entropy(x, t)),
    ("ce_sum", lambda F_, x, y, t: F_.cross_entropy(x, t, reduction="sum")),
    ("ce_none", lambda F_, x, y, t: F_.cross_entropy(x, t, reduction="none")),
    ("ce_ignore_1", lambda F_, x, y, t: F_.cross_entropy(x, t.clamp(min=0), ignore_index=1)),
    ("nll_mean", lambda F_, x, y, t: F_.nll_loss(F_.log_softmax(x, dim=1), t)),
    ("nll_none", lambda F_, x, y, t: F_.nll_loss(F_.log_softmax(x, dim=1), t, reduction="none")),
    ("softmax", lambda F_, x, y, t: F_.softmax(x, dim=0) * y),
    ("sigmoid_tanh_relu", lambda F_, x, y, t: F_.relu(F_.tanh(x) - F_.sigmoid(y))),
    ("linear", lambda F_, x, y, t: F_.linear(x, y[:2], y[2, :2])),
]


@pytest.mark.parametrize("name,fn", LOSSES, ids=[n for n, _ in LOSSES])
def test_functional_values_and_grads_match_torch(name, fn):
    x_np, y_np = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 3))
    (x, tx), (y, ty) = _pair(x_np), _pair(y_np)
    t, tt = engine.tensor(TARGET), torch.tensor(TARGET)
    ours, theirs = fn(F, x, y, t), fn(TF, tx, ty, tt)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10)
    w = RNG.standard_normal(tuple(theirs.shape))
    (ours * engine.tensor(w, dtype=engine.float64)).sum().backward()
    (theirs * torch.tensor(w)).sum().backward()
    _grads_match([x, y], [tx, ty])


def _twin_models():
    """A gradserve MLP and a torch MLP holding the same float64 weights."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                                 torch.nn.ReLU(), torch.nn.Linear(8, 4)).double()
    ours = nn.Sequential(nn.Linear(6, 8, dtype=engine.float64), nn.Tanh(),
                         nn.Linear(8, 8, dtype=engine.float64), nn.ReLU(),
                         nn.Linear(8, 4, dtype=engine.float64))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def test_state_dicts_have_the_same_keys_and_shapes():
    ours, theirs = _twin_models()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (k, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(),
                                  strict=True):
        np.testing.assert_array_equal(a, b.numpy(), err_msg=k)
    # and back the other way: torch loads our state_dict
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})


OPTIMIZERS = [
    ("sgd", lambda m, lib: lib.SGD(m.parameters(), lr=0.1)),
    ("sgd_momentum_wd", lambda m, lib: lib.SGD(m.parameters(), lr=0.05, momentum=0.9,
                                               weight_decay=0.01)),
    ("sgd_dampening", lambda m, lib: lib.SGD(m.parameters(), lr=0.05, momentum=0.5,
                                             dampening=0.3)),
    ("sgd_nesterov", lambda m, lib: lib.SGD(m.parameters(), lr=0.05, momentum=0.9,
                                            nesterov=True)),
    ("adam", lambda m, lib: lib.Adam(m.parameters(), lr=0.01)),
    ("adam_wd", lambda m, lib: lib.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                        weight_decay=0.1)),
]


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_training_steps_match_torch(name, make):
    ours, theirs = _twin_models()
    opt, topt = make(ours, optim), make(theirs, torch.optim)
    x_np = RNG.standard_normal((10, 6))
    t_np = RNG.integers(0, 4, 10)
    x, tx = _pair(x_np, requires_grad=False)
    t, tt = engine.tensor(t_np), torch.tensor(t_np)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        loss = F.cross_entropy(ours(x), t)
        tloss = TF.cross_entropy(theirs(tx), tt)
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
        loss.backward()
        tloss.backward()
        _grads_match(list(ours.parameters()), list(theirs.parameters()), rtol=1e-9)
        opt.step()
        topt.step()
    for (k, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(),
                                  strict=True):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_linear_initialisation_matches_torchs_distribution():
    ours = nn.Linear(256, 128).weight.detach().numpy()
    theirs = torch.nn.Linear(256, 128).weight.detach().numpy()
    assert abs(ours.max() - theirs.max()) < 0.002 and abs(ours.min() - theirs.min()) < 0.002
    assert abs(ours.std() - theirs.std()) < 0.002


def test_reprs_match_torch():
    ours = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.1),
                         nn.Sequential(nn.Linear(512, 10, bias=False), nn.Tanh(), nn.Sigmoid()),
                         nn.ReLU(inplace=True), nn.MSELoss(), nn.CrossEntropyLoss())
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                 torch.nn.Dropout(0.1),
                                 torch.nn.Sequential(torch.nn.Linear(512, 10, bias=False),
                                                     torch.nn.Tanh(), torch.nn.Sigmoid()),
                                 torch.nn.ReLU(inplace=True), torch.nn.MSELoss(),
                                 torch.nn.CrossEntropyLoss())
    assert repr(ours) == repr(theirs)


def test_dropout_scaling_matches_torch():
    engine.manual_seed(0)
    x = engine.ones(1000, dtype=engine.float64, requires_grad=True)
    ours = F.dropout(x, 0.3)
    theirs = TF.dropout(torch.ones(1000, dtype=torch.float64), 0.3)
    assert set(np.unique(ours.detach().numpy())) == set(np.unique(theirs.numpy()))
