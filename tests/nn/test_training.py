"""A small model trained in-process end to end: nn + functional + optim together."""

import time

import gradserve.nn as nn
import gradserve.optim as optim
import numpy as np
import pytest
from gradserve import engine


def spirals(n_per_class=100, classes=3, seed=0):
    """The classic interleaved-spirals toy set: not linearly separable, seeded."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.2, n_per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


@pytest.mark.parametrize("make_opt,steps", [
    (lambda ps: optim.Adam(ps, lr=0.02), 400),
    (lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9), 600),
])
def test_mlp_learns_three_spirals_to_95_percent(make_opt, steps):
    x_np, y_np = spirals()
    x, y = engine.tensor(x_np), engine.tensor(y_np)
    engine.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))
    loss_fn = nn.CrossEntropyLoss()
    opt = make_opt(model.parameters())
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    with engine.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.95, f"train accuracy {accuracy:.3f} after {steps} steps"
    assert elapsed < 10.0
