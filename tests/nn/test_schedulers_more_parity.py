"""ConstantLR, LinearLR, PolynomialLR, CosineAnnealingWarmRestarts, CyclicLR, SequentialLR
and ChainedScheduler against torch's: the lr (and cycled momentum) of every param group
after each of 30 steps, and state_dict round trips that resume exactly."""

from __future__ import annotations

import copy
import warnings

import gradserve.optim as optim
import pytest
import torch
from gradserve import engine

STEPS = 30


def _groups(lib_optim, make_opt, params):
    return make_opt(lib_optim, [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}])


SGD = lambda o, g: o.SGD(g, lr=0.1, momentum=0.9)  # noqa: E731
ADAM = lambda o, g: o.Adam(g, lr=0.1)  # noqa: E731

SCHEDULES = [
    ("constant", SGD, lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=4)),
    ("linear", SGD, lambda s, o: s.LinearLR(o, start_factor=0.2, total_iters=7)),
    ("linear-down", SGD, lambda s, o: s.LinearLR(o, start_factor=1.0, end_factor=0.1,
                                                 total_iters=12)),
    ("polynomial", SGD, lambda s, o: s.PolynomialLR(o, total_iters=20, power=2.0)),
    ("warm-restarts", SGD, lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=5)),
    ("warm-restarts-mult", SGD, lambda s, o: s.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=0.001)),
    ("cyclic", SGD, lambda s, o: s.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4)),
    ("cyclic-triangular2", SGD, lambda s, o: s.CyclicLR(
        o, base_lr=[0.01, 0.02], max_lr=0.2, step_size_up=3, step_size_down=5,
        mode="triangular2")),
    ("cyclic-exp-adam", ADAM, lambda s, o: s.CyclicLR(
        o, base_lr=0.001, max_lr=0.01, step_size_up=5, mode="exp_range", gamma=0.97)),
    ("cyclic-custom", SGD, lambda s, o: s.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=2, scale_fn=lambda x: 0.9 ** x,
        scale_mode="iterations", cycle_momentum=False)),
    ("sequential", SGD, lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.1, total_iters=5),
            s.CosineAnnealingLR(o, T_max=10), s.ExponentialLR(o, gamma=0.9)],
        milestones=[5, 15])),
    ("chained", SGD, lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, factor=0.5, total_iters=6), s.ExponentialLR(o, gamma=0.95),
         s.PolynomialLR(o, total_iters=25)])),
]


def _record(optimizer) -> list[float]:
    """Each group's lr, momentum and beta1 (-1 where the optimizer has none)."""
    return [v for g in optimizer.param_groups
            for v in (g["lr"], g.get("momentum", -1), g.get("betas", (-1,))[0])]


@pytest.mark.parametrize("name,make_opt,make_sched", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_learning_rates_match_torch(name, make_opt, make_sched):
    opt = _groups(optim, make_opt, [engine.ones(2, requires_grad=True),
                                    engine.ones(2, requires_grad=True)])
    topt = _groups(torch.optim, make_opt, [torch.ones(2, requires_grad=True),
                                           torch.ones(2, requires_grad=True)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "step order" and "closed form" warnings
        sched, tsched = make_sched(optim.lr_scheduler, opt), make_sched(torch.optim.lr_scheduler,
                                                                        topt)
        assert _record(opt) == pytest.approx(_record(topt), rel=1e-12)
        for i in range(STEPS):
            opt.step()
            topt.step()
            sched.step()
            tsched.step()
            assert _record(opt) == pytest.approx(_record(topt), rel=1e-12, abs=1e-15), i
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
            if i == STEPS // 2:
                saved = copy.deepcopy(sched.state_dict())
                groups = [{k: v for k, v in g.items() if k != "params"}
                          for g in opt.param_groups]
        # a fresh scheduler resumed from the state of step STEPS // 2 continues the same way
        again = _groups(optim, make_opt, [engine.ones(2, requires_grad=True),
                                          engine.ones(2, requires_grad=True)])
        resumed = make_sched(optim.lr_scheduler, again)
        resumed.load_state_dict(saved)
        for group, values in zip(again.param_groups, groups, strict=True):
            group.update(values)
        for _ in range(STEPS - STEPS // 2 - 1):
            again.step()
            resumed.step()
        assert _record(again) == pytest.approx(_record(opt), rel=1e-12, abs=1e-15)


def test_warm_restarts_take_fractional_epochs_as_torch():
    opt = optim.SGD([engine.ones(1, requires_grad=True)], lr=0.1)
    topt = torch.optim.SGD([torch.ones(1, requires_grad=True)], lr=0.1)
    sched = optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2)
    tsched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=4, T_mult=2)
    for epoch in (0.5, 1.25, 3.9, 4.0, 7.5, 13.2, 2.0):
        sched.step(epoch)
        tsched.step(epoch)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("make", [
    lambda s, o: s.ConstantLR(o, factor=2.0),
    lambda s, o: s.LinearLR(o, start_factor=0.0),
    lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=0),
    lambda s, o: s.CyclicLR(o, 0.1, 1.0, mode="bogus"),
    lambda s, o: s.SequentialLR(o, [s.ConstantLR(o)], milestones=[3]),
    lambda s, o: s.ChainedScheduler([]),
])
def test_argument_errors_are_torch_s(make):
    opt = optim.SGD([engine.ones(1, requires_grad=True)], lr=0.1)
    topt = torch.optim.SGD([torch.ones(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError) as theirs:
        make(torch.optim.lr_scheduler, topt)
    with pytest.raises(ValueError) as ours:
        make(optim.lr_scheduler, opt)
    assert str(ours.value) == str(theirs.value)


def test_cyclic_needs_momentum():
    opt = optim.Adagrad([engine.ones(1, requires_grad=True)])
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1)
