"""The §6 layers, optimizers and schedules on a real remote session (a server on loopback):
the same numbers as in-process, and an optimizer step (with its schedule and gradient
clipping) that never waits for the server."""

from __future__ import annotations

import gradserve.nn as nn
import gradserve.optim as optim
import numpy as np
import pytest
from gradserve import engine

R = np.random.default_rng(11)

MODELS = [
    ("cnn", lambda w: nn.Sequential(
        nn.Conv2d(2, 4, 3, padding="same", session=w), nn.BatchNorm2d(4, session=w), nn.GELU(),
        nn.MaxPool2d(2), nn.Conv2d(4, 4, 2, groups=2, session=w), nn.AvgPool2d(1),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(4, 3, session=w)),
     lambda: R.standard_normal((3, 2, 6, 6))),
    ("transformer", lambda w: nn.Sequential(
        nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, session=w),
        nn.LayerNorm(8, session=w), nn.Linear(8, 3, session=w)),
     lambda: R.standard_normal((2, 4, 8))),
    ("lstm", lambda w: _Last(nn.LSTM(3, 4, num_layers=2, batch_first=True, session=w)),
     lambda: R.standard_normal((2, 5, 3))),
    ("gru-groupnorm", lambda w: nn.Sequential(
        _Last(nn.GRU(3, 4, session=w)), nn.GroupNorm(1, 2, session=w), nn.SiLU()),
     lambda: R.standard_normal((5, 2, 3))),
]


class _Last(nn.Module):
    """An RNN's output sequence only."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("name,make,data", MODELS, ids=[m[0] for m in MODELS])
def test_remote_models_compute_what_the_engine_computes(session, name, make, data):
    local, remote = make(engine), make(session)
    remote.load_state_dict(local.state_dict())
    x = data().astype(np.float32)
    outs, grads = [], []
    for model, where in ((local, engine), (remote, session)):
        out = model(where.tensor(x))
        (out * out).sum().backward()
        outs.append(out.detach().numpy())
        grads.append(session.fetch(*[p.grad for p in model.parameters()])
                     if where is session else [p.grad.numpy() for p in model.parameters()])
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # running statistics and counters changed on the server exactly as in-process
    for (k, a), b in zip(remote.state_dict().items(), local.state_dict().values(),
                         strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=k)


OPTIMIZERS = [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
]


@pytest.mark.parametrize("make_opt", OPTIMIZERS, ids=["sgd", "adam", "adamw", "rmsprop",
                                                      "adagrad"])
def test_a_remote_step_is_ops_only_and_matches_in_process(session, make_opt):
    local = nn.Sequential(nn.Linear(4, 8, session=engine), nn.Tanh(),
                          nn.Linear(8, 2, session=engine))  # in-process, though s is current
    remote = nn.Sequential(nn.Linear(4, 8, session=session), nn.Tanh(),
                           nn.Linear(8, 2, session=session))
    remote.load_state_dict(local.state_dict())
    x = R.standard_normal((6, 4)).astype(np.float32)
    runs = []
    for model, where in ((local, engine), (remote, session)):
        opt = make_opt(model.parameters())
        sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10) \
            if "momentum" in opt.defaults or "betas" in opt.defaults else \
            optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        xs = where.tensor(x)
        for _ in range(4):
            loss = model(xs).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            before = session.stats.waits
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            sched.step()
            assert session.stats.waits == before, "an optimizer step waited for the server"
        runs.append(model.state_dict())
    for (k, a), b in zip(runs[1].items(), runs[0].values(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=k)


def test_initialisers_draw_on_the_session_without_waiting(session):
    w = session.empty(64, 32)
    before = session.stats.waits
    for init in (nn.init.xavier_uniform_, nn.init.kaiming_normal_, nn.init.trunc_normal_,
                 lambda t: nn.init.normal_(t, 1.0, 0.1)):
        init(w)
    assert session.stats.waits == before
    values = w.numpy()
    assert abs(values.mean() - 1.0) < 0.05 and abs(values.std() - 0.1) < 0.02


def test_trunc_normal_stays_in_bounds_with_normal_shape():
    engine.manual_seed(0)
    w = nn.init.trunc_normal_(engine.empty(20000), mean=0.0, std=1.0, a=-1.0, b=1.5).numpy()
    assert w.min() >= -1.0 and w.max() <= 1.5
    # the truncated normal's mean on [-1, 1.5]: (phi(-1) - phi(1.5)) / (Phi(1.5) - Phi(-1))
    # = (0.24197 - 0.12952) / (0.93319 - 0.15866) = 0.1452; the sample's sd is 0.006
    assert abs(w.mean() - 0.1452) < 0.02
