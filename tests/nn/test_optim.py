"""gradserve.optim: each update against the same steps written out by hand in numpy."""

import math

import gradserve.nn as nn
import gradserve.optim as optim
import numpy as np
import pytest
from gradserve import engine

P0 = np.array([[0.5, -1.0], [2.0, 0.25]])
# Two gradients to feed the optimizer, one per step (set by hand, not from a loss).
G = [np.array([[0.1, -0.2], [0.3, 0.4]]), np.array([[-0.5, 0.05], [0.2, -0.1]])]


def _run(make_opt, grads=G):
    """Apply the optimizer to P0 with the given gradients; the parameter after each step."""
    p = engine.tensor(P0, dtype=engine.float64, requires_grad=True)
    opt = make_opt([p])
    history = []
    for g in grads:
        p.grad = engine.tensor(g, dtype=engine.float64)
        opt.step()
        history.append(p.detach().numpy().copy())
    assert p.is_leaf and p.requires_grad
    return history


def test_sgd_plain():
    out = _run(lambda ps: optim.SGD(ps, lr=0.1))
    np.testing.assert_allclose(out[0], P0 - 0.1 * G[0])
    np.testing.assert_allclose(out[1], P0 - 0.1 * G[0] - 0.1 * G[1])


def test_sgd_momentum_two_steps_by_hand():
    lr, mu = 0.1, 0.9
    out = _run(lambda ps: optim.SGD(ps, lr=lr, momentum=mu))
    buf1 = G[0]                      # first step: the buffer is the gradient itself
    p1 = P0 - lr * buf1
    buf2 = mu * buf1 + G[1]
    p2 = p1 - lr * buf2
    np.testing.assert_allclose(out[0], p1)
    np.testing.assert_allclose(out[1], p2)


def test_sgd_momentum_dampening_and_weight_decay_by_hand():
    lr, mu, damp, wd = 0.05, 0.8, 0.3, 0.01
    out = _run(lambda ps: optim.SGD(ps, lr=lr, momentum=mu, dampening=damp, weight_decay=wd))
    d1 = G[0] + wd * P0
    buf1 = d1                        # dampening does not apply to the first step
    p1 = P0 - lr * buf1
    d2 = G[1] + wd * p1
    buf2 = mu * buf1 + (1 - damp) * d2
    p2 = p1 - lr * buf2
    np.testing.assert_allclose(out[0], p1)
    np.testing.assert_allclose(out[1], p2)


def test_sgd_nesterov_by_hand():
    lr, mu = 0.1, 0.9
    out = _run(lambda ps: optim.SGD(ps, lr=lr, momentum=mu, nesterov=True))
    buf1 = G[0]
    p1 = P0 - lr * (G[0] + mu * buf1)
    buf2 = mu * buf1 + G[1]
    p2 = p1 - lr * (G[1] + mu * buf2)
    np.testing.assert_allclose(out[0], p1)
    np.testing.assert_allclose(out[1], p2)


def _adam_by_hand(lr, b1, b2, eps, wd, steps):
    p, m, v = P0.copy(), np.zeros_like(P0), np.zeros_like(P0)
    out = []
    for t, g in enumerate(steps, start=1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_two_steps_by_hand(wd):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    out = _run(lambda ps: optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd))
    want = _adam_by_hand(lr, b1, b2, eps, wd, G)
    np.testing.assert_allclose(out[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(out[1], want[1], rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr():
    # With bias correction the first step is lr * g / (|g| + eps'): almost exactly lr.
    out = _run(lambda ps: optim.Adam(ps, lr=0.01), grads=G[:1])
    np.testing.assert_allclose(np.abs(out[0] - P0), 0.01, rtol=1e-6)


def test_adam_state_step_counts_and_buffers_stay_tensors():
    p = engine.tensor(P0, dtype=engine.float32, requires_grad=True)
    opt = optim.Adam([p])
    for _ in range(3):
        p.grad = engine.ones(2, 2)
        opt.step()
    state = opt.state[p]
    assert state["step"] == 3
    assert isinstance(state["exp_avg"], engine.Tensor) and not state["exp_avg"].requires_grad
    np.testing.assert_allclose(state["exp_avg"].numpy(), 1 - 0.9**3, rtol=1e-6)


def test_parameters_without_grad_are_left_alone():
    a = engine.ones(2, requires_grad=True)
    b = engine.ones(2, requires_grad=True)
    opt = optim.SGD([a, b], lr=1.0, momentum=0.9)
    (a * 3).sum().backward()
    opt.step()
    np.testing.assert_array_equal(a.detach().numpy(), [-2.0, -2.0])
    np.testing.assert_array_equal(b.detach().numpy(), [1.0, 1.0])
    assert b not in opt.state


def test_param_groups_take_their_own_hyper_parameters():
    a = engine.ones(1, requires_grad=True)
    b = engine.ones(1, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    (a + b).sum().backward()
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.5)


def test_zero_grad():
    p = engine.ones(2, requires_grad=True)
    opt = optim.Adam([p])
    p.sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_closure_is_evaluated_with_grad_enabled():
    p = engine.tensor([2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with engine.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0 and p.item() == pytest.approx(1.0)


def test_invalid_arguments():
    p = engine.ones(1, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(p, lr=0.1)


def test_optimizer_keeps_a_model_trainable_after_load_state_dict():
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model.load_state_dict(nn.Linear(2, 1).state_dict())
    model(engine.ones(1, 2)).sum().backward()
    before = model.bias.item()
    opt.step()
    assert model.bias.item() == pytest.approx(before - 0.1)


def test_adam_bias_correction_matches_the_closed_form_for_a_constant_gradient():
    p = engine.zeros(1, dtype=engine.float64, requires_grad=True)
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    for _ in range(5):
        p.grad = engine.tensor([0.3], dtype=engine.float64)
        opt.step()
    # A constant gradient makes m_hat = g and v_hat = g^2 exactly: each step is -lr.
    assert p.item() == pytest.approx(-0.5, rel=1e-12)
    assert math.isfinite(p.item())
