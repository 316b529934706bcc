"""Adadelta, Adamax, NAdam, RAdam and LBFGS against torch's over 12 steps from identical
float64 weights, in-process and on a real session; on a session a step of the first four
waits for nothing, and LBFGS waits only where torch compares scalars."""

from __future__ import annotations

import gradserve.nn as nn
import gradserve.optim as optim
import numpy as np
import pytest
import torch
from gradserve import engine

STEPS = 12
RNG = np.random.default_rng(5)
X, Y = RNG.standard_normal((6, 3)), RNG.standard_normal((6, 2))

OPTIMIZERS = [
    ("adadelta", lambda o, ps: o.Adadelta(ps)),
    ("adadelta-decay-maximize", lambda o, ps: o.Adadelta(ps, lr=0.5, rho=0.8,
                                                         weight_decay=0.1, maximize=True)),
    ("adamax", lambda o, ps: o.Adamax(ps)),
    ("adamax-decay", lambda o, ps: o.Adamax(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ("nadam", lambda o, ps: o.NAdam(ps, lr=0.01)),
    ("nadam-decay", lambda o, ps: o.NAdam(ps, lr=0.01, weight_decay=0.1, momentum_decay=0.01)),
    ("nadam-decoupled", lambda o, ps: o.NAdam(ps, lr=0.01, weight_decay=0.1,
                                              decoupled_weight_decay=True)),
    ("radam", lambda o, ps: o.RAdam(ps, lr=0.01)),
    ("radam-decay-maximize", lambda o, ps: o.RAdam(ps, lr=0.01, weight_decay=0.1,
                                                   maximize=True)),
    ("radam-decoupled", lambda o, ps: o.RAdam(ps, lr=0.01, weight_decay=0.1,
                                              decoupled_weight_decay=True)),
    ("lbfgs", lambda o, ps: o.LBFGS(ps, lr=0.5, max_iter=5)),
    ("lbfgs-history", lambda o, ps: o.LBFGS(ps, lr=0.3, max_iter=4, history_size=2)),
    ("lbfgs-strong-wolfe", lambda o, ps: o.LBFGS(ps, max_iter=7, history_size=3,
                                                 line_search_fn="strong_wolfe")),
]


def _models(session):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                 torch.nn.Linear(4, 2)).double()
    ours = nn.Sequential(nn.Linear(3, 4, session=session), nn.Tanh(),
                         nn.Linear(4, 2, session=session)).to(engine.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _train(make, session, steps=STEPS, rtol=1e-9):
    ours, theirs = _models(session)
    opt, topt = make(optim, ours.parameters()), make(torch.optim, theirs.parameters())
    home = engine if session is None else session
    x, y = home.tensor(X, dtype=engine.float64), home.tensor(Y, dtype=engine.float64)
    tx, ty = torch.tensor(X), torch.tensor(Y)

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(ours(x), y)
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = torch.nn.functional.mse_loss(theirs(tx), ty)
        loss.backward()
        return loss

    waits = []
    for _ in range(steps):
        before = None if session is None else session.stats.waits
        loss = opt.step(closure)
        if session is not None:
            session.synchronize()
            waits.append(session.stats.waits - before - 1)
        tloss = topt.step(tclosure)
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=rtol, atol=1e-14)
        tp = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.detach().numpy(), tp[name].detach().numpy(),
                                       rtol=rtol, atol=1e-12, err_msg=name)
    return opt, topt, waits


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_trajectory_matches_torch_in_process(name, make):
    opt, topt, _ = _train(make, None)
    # torch's hyper-parameter names (it keeps foreach/capturable/... flags besides)
    assert set(opt.state_dict()["param_groups"][0]) <= set(topt.state_dict()["param_groups"][0])
    if name.startswith("lbfgs"):
        st, tst = opt.state[opt._params[0]], topt.state[topt._params[0]]
        assert (st["func_evals"], st["n_iter"]) == (tst["func_evals"], tst["n_iter"])


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_trajectory_matches_torch_on_a_session(session, name, make):
    _, _, waits = _train(make, session, steps=4)
    if not name.startswith("lbfgs"):
        assert waits == [0] * 4  # the step and the closure's backward: buffered ops only
    else:  # the closure's loss, the curvature and the slope per iteration, not per parameter
        assert all(0 < w <= 4 * 8 for w in waits), waits


def test_lbfgs_stops_at_a_minimum_and_needs_a_closure():
    w = engine.tensor([1.0, -2.0], dtype=engine.float64, requires_grad=True)
    opt = optim.LBFGS([w], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((w - engine.tensor([3.0, 4.0], dtype=engine.float64)) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(w.detach().numpy(), [3.0, 4.0], atol=1e-8)
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        optim.LBFGS([{"params": [w]}, {"params": [engine.ones(1, requires_grad=True)]}])
    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        w.data = engine.zeros(2, dtype=engine.float64)  # away from the minimum again
        optim.LBFGS([w], line_search_fn="armijo").step(closure)


@pytest.mark.parametrize("make,message", [
    (lambda ps: optim.Adadelta(ps, rho=1.5), "Invalid rho value: 1.5"),
    (lambda ps: optim.Adamax(ps, betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    (lambda ps: optim.NAdam(ps, momentum_decay=-1), "Invalid momentum_decay value: -1"),
    (lambda ps: optim.RAdam(ps, lr=-1), "Invalid learning rate: -1"),
])
def test_argument_errors_are_torch_s(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make([engine.ones(1, requires_grad=True)])
