"""gradserve.nn and gradserve.optim on a real remote session (an embedded server on loopback).

The same model code as in-process: parameters are created on the session, an optimizer step
sends its updates without waiting for the server, and state_dict/load_state_dict round-trip.
Skipped when the client or server package is not importable.
"""

import gradserve.nn as nn
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np
import pytest
from gradserve import engine


def _model(s, seed):
    s.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16, session=s), nn.ReLU(), nn.Linear(16, 3, session=s))


def _data(s):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return s.tensor(x), s.tensor(y), y


def test_parameters_live_on_the_session(session):
    model = _model(session, 0)
    for p in model.parameters():
        assert not isinstance(p, engine.Tensor)
        assert p.session is session and p.is_leaf and p.requires_grad
    bound = 1 / np.sqrt(4)
    w = model[0].weight.detach().numpy()
    assert w.shape == (16, 4) and np.abs(w).max() <= bound


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.2, momentum=0.9, weight_decay=1e-4),
    lambda ps: optim.Adam(ps, lr=0.02),
], ids=["sgd", "adam"])
def test_remote_training_learns_and_steps_never_wait(session, make_opt):
    model = _model(session, 1)
    x, y, y_np = _data(session)
    opt = make_opt(model.parameters())
    stats = getattr(session, "stats", None)
    for _ in range(60):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        before = stats.waits if stats is not None else 0
        opt.step()
        if stats is not None:
            assert stats.waits == before, "an optimizer step waited for the server"
    with engine.no_grad():
        predicted = model(x).argmax(1).numpy()
    assert (predicted == y_np).mean() >= 0.9


def test_remote_state_dict_round_trip(session):
    src, dst = _model(session, 2), _model(session, 3)
    x, _, _ = _data(session)
    sd = src.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    dst.load_state_dict(sd)
    np.testing.assert_array_equal(dst(x).detach().numpy(), src(x).detach().numpy())
    # a remote model loads an in-process one's weights and back
    local = nn.Sequential(nn.Linear(4, 16, session=engine), nn.ReLU(),
                          nn.Linear(16, 3, session=engine))  # in-process, though s is current
    local.load_state_dict(dst.state_dict())
    np.testing.assert_allclose(local(engine.tensor(x.numpy())).detach().numpy(),
                               dst(x).detach().numpy(), rtol=1e-6)
