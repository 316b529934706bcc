"""Every optimizer and scheduler against torch's over 12+ steps from identical float64
weights (skipped without torch), and state_dict round trips that resume exactly."""

from __future__ import annotations

import gradserve.nn as nn
import gradserve.optim as optim
import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI
from gradserve import engine

STEPS = 12
RNG = np.random.default_rng(5)
X, Y = RNG.standard_normal((6, 3)), RNG.standard_normal((6, 2))


def _models():
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                 torch.nn.Linear(4, 2)).double()
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(engine.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _step(model, loss_fn, x, y, opt):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss


def _compare(ours, theirs, rtol=1e-10):
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), tp[name].detach().numpy(), rtol=rtol,
                                   atol=1e-13, err_msg=name)


def _run(make, ours, theirs, steps=STEPS, scheduler=None, metric=None):
    """Train both for `steps`; return (our optimizer, our scheduler, lr histories)."""
    opt, topt = make(optim, ours.parameters()), make(torch.optim, theirs.parameters())
    sched = tsched = None
    if scheduler is not None:
        sched, tsched = scheduler(optim.lr_scheduler, opt), scheduler(torch.optim.lr_scheduler,
                                                                      topt)
    x, y = engine.tensor(X, dtype=engine.float64), engine.tensor(Y, dtype=engine.float64)
    tx, ty = torch.tensor(X), torch.tensor(Y)
    lrs, tlrs = [], []
    for i in range(steps):
        loss = _step(ours, nn.functional.mse_loss, x, y, opt)
        tloss = _step(theirs, torch.nn.functional.mse_loss, tx, ty, topt)
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
        _compare(ours, theirs)
        if sched is not None:
            if metric is not None:
                sched.step(metric[i])
                tsched.step(metric[i])
            else:
                sched.step()
                tsched.step()
            lrs.append([g["lr"] for g in opt.param_groups])
            tlrs.append([g["lr"] for g in topt.param_groups])
            np.testing.assert_allclose(lrs[-1], tlrs[-1], rtol=1e-12)
    return opt, sched, (lrs, tlrs), topt


OPTIMIZERS = [
    ("sgd", lambda o, ps: o.SGD(ps, lr=0.1)),
    ("sgd-momentum-dampening-decay", lambda o, ps: o.SGD(ps, lr=0.1, momentum=0.9,
                                                         dampening=0.1, weight_decay=0.01)),
    ("sgd-nesterov", lambda o, ps: o.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", lambda o, ps: o.Adam(ps, lr=0.01)),
    ("adam-amsgrad-decay", lambda o, ps: o.Adam(ps, lr=0.02, amsgrad=True, weight_decay=0.01)),
    ("adam-maximize", lambda o, ps: o.Adam(ps, lr=0.01, betas=(0.8, 0.9), maximize=True)),
    ("adamw", lambda o, ps: o.AdamW(ps, lr=0.01, weight_decay=0.1)),
    ("adamw-amsgrad", lambda o, ps: o.AdamW(ps, lr=0.01, amsgrad=True)),
    ("rmsprop", lambda o, ps: o.RMSprop(ps, lr=0.01)),
    ("rmsprop-centered-momentum-decay", lambda o, ps: o.RMSprop(ps, lr=0.01, momentum=0.9,
                                                                centered=True,
                                                                weight_decay=0.01)),
    ("adagrad", lambda o, ps: o.Adagrad(ps, lr=0.1)),
    ("adagrad-decays", lambda o, ps: o.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                               initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_optimizer_tracks_torch(name, make):
    _run(make, *_models())


def test_param_groups_with_their_own_hyper_parameters_track_torch():
    def make(o, _params):
        return o.Adam([{"params": models[o is optim][0].parameters(), "lr": 0.05},
                       {"params": models[o is optim][2].parameters()}], lr=0.01,
                      weight_decay=0.01)

    ours, theirs = _models()
    models = {True: ours, False: theirs}
    opt, *_ = _run(make, ours, theirs)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.01]


SCHEDULERS = [
    ("step", lambda s, o: s.StepLR(o, step_size=3, gamma=0.5), None),
    ("multistep", lambda s, o: s.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.5), None),
    ("exponential", lambda s, o: s.ExponentialLR(o, gamma=0.9), None),
    ("cosine-past-T_max", lambda s, o: s.CosineAnnealingLR(o, T_max=5, eta_min=0.01), None),
    ("lambda", lambda s, o: s.LambdaLR(o, lambda e: 1.0 / (e + 1)), None),
    ("onecycle", lambda s, o: s.OneCycleLR(o, max_lr=0.5, total_steps=16), None),
    ("onecycle-three-phase-linear", lambda s, o: s.OneCycleLR(
        o, max_lr=0.3, epochs=4, steps_per_epoch=4, three_phase=True,
        anneal_strategy="linear"), None),
    ("plateau", lambda s, o: s.ReduceLROnPlateau(o, patience=1, factor=0.5, cooldown=1),
     [1.0, 0.9, 0.95, 0.97, 0.99, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4]),
    ("plateau-max-abs", lambda s, o: s.ReduceLROnPlateau(o, mode="max", threshold=0.1,
                                                         threshold_mode="abs", patience=0,
                                                         min_lr=0.02),
     [1.0, 1.05, 1.2, 1.25, 1.3, 1.5, 1.55, 1.6, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
]


@pytest.mark.parametrize("opt_name", ["sgd-momentum", "adam"])
@pytest.mark.parametrize("name,make,metric", SCHEDULERS, ids=[n for n, *_ in SCHEDULERS])
def test_scheduler_tracks_torch(opt_name, name, make, metric):
    def make_opt(o, ps):
        if opt_name == "adam":
            return o.Adam(ps, lr=0.1)
        return o.SGD(ps, lr=0.1, momentum=0.9)

    opt, sched, _, topt = _run(make_opt, *_models(), steps=15, scheduler=make, metric=metric)
    for g, tg in zip(opt.param_groups, topt.param_groups, strict=True):
        for key in ("momentum", "betas"):  # OneCycleLR cycles these
            if key in tg:
                np.testing.assert_allclose(g[key], tg[key], rtol=1e-12)


def test_optimizer_state_dict_round_trip_resumes_exactly():
    make = OPTIMIZERS[5][1]
    ours, theirs = _models()
    opt, *_ = _run(make, ours, theirs, steps=4)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert sd["state"][0]["step"] == 4 and sorted(sd["state"][0]) == [
        "exp_avg", "exp_avg_sq", "step"]
    # a fresh model and optimizer, loaded, continue exactly like the original
    copy_model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(engine.float64)
    copy_model.load_state_dict(ours.state_dict())
    resumed = make(optim, copy_model.parameters())
    resumed.load_state_dict(sd)
    assert resumed.param_groups[0]["betas"] == (0.8, 0.9)
    x, y = engine.tensor(X, dtype=engine.float64), engine.tensor(Y, dtype=engine.float64)
    for _ in range(3):
        _step(ours, nn.functional.mse_loss, x, y, opt)
        _step(copy_model, nn.functional.mse_loss, x, y, resumed)
    for a, b in zip(ours.parameters(), copy_model.parameters(), strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_optimizer_state_dict_layout_matches_torch():
    ours, theirs = _models()
    opt, _, _, topt = _run(OPTIMIZERS[10][1], ours, theirs, steps=2)  # adagrad
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["param_groups"][0].keys() <= tsd["param_groups"][0].keys()
    assert sd["state"].keys() == tsd["state"].keys()
    for i, st in sd["state"].items():
        assert st.keys() == tsd["state"][i].keys()
        np.testing.assert_allclose(st["sum"].numpy(), tsd["state"][i]["sum"].numpy())
        assert float(st["step"]) == float(tsd["state"][i]["step"])


def test_scheduler_state_dict_round_trip():
    ours, _ = _models()
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=20)
    for _ in range(5):
        opt.step()
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd
    opt2 = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    sched2 = optim.lr_scheduler.OneCycleLR(opt2, max_lr=0.5, total_steps=20)
    sched2.load_state_dict(sd)
    for _ in range(5):
        sched.step()
        sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()
