"""SGD's step over many parameters as one op on a remote session (`optim_sgd_step`, torch's
foreach form) and zero_grad as one op (`clear_grads`): the same bits as the step op by op,
torch's trajectory and version counters, one entry per step on the wire."""

from __future__ import annotations

import gradserve as gs
import gradserve.nn as nn
import gradserve.optim as optim
import numpy as np
import pytest
import torch  # the oracle
from gradserve import engine
from gradserve.engine.seam import OPS

RNG = np.random.default_rng(11)
X, Y = RNG.standard_normal((6, 3)), RNG.integers(0, 2, 6)
HYPER = {
    "plain": dict(lr=0.1),
    "decay": dict(lr=0.05, weight_decay=0.01),
    "momentum": dict(lr=0.05, momentum=0.9),
    "dampened": dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.02),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
}


def _torch_model(dtype):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                               torch.nn.Linear(4, 2)).to(dtype)


def _ours(where, theirs, dtype):
    model = nn.Sequential(nn.Linear(3, 4, session=where), nn.Tanh(),
                          nn.Linear(4, 2, session=where)).to(dtype)
    model.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return model


def _recorded(session, fn, *args) -> list:
    """The names of the ops `fn(*args)` records on `session`."""
    names, buffer = [], session._buffer
    session._buffer = lambda op, *rest: (names.append(op), buffer(op, *rest))
    try:
        fn(*args)
    finally:
        del session._buffer
    return names


def _step(model, opt, x, y):
    opt.zero_grad()
    f = torch.nn.functional if isinstance(x, torch.Tensor) else nn.functional
    loss = f.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(HYPER))
def test_the_fused_step_is_the_step_op_by_op_bit_for_bit(session, name, dtype):
    theirs = _torch_model(getattr(torch, dtype))
    topt = torch.optim.SGD(theirs.parameters(), foreach=True, **HYPER[name])
    sides = {}
    for foreach in (None, False):
        model = _ours(session, theirs, getattr(gs, dtype))
        sides[foreach] = (model, optim.SGD(model.parameters(), foreach=foreach, **HYPER[name]))
    x, y = session.tensor(X, dtype=getattr(gs, dtype)), session.tensor(Y)
    tx, ty = torch.tensor(X, dtype=getattr(torch, dtype)), torch.tensor(Y)
    for _ in range(4):
        tversions = [p._version for p in theirs.parameters()]
        _step(theirs, topt, tx, ty)
        tmoved = [p._version - v for p, v in zip(theirs.parameters(), tversions, strict=True)]
        for foreach, (model, opt) in sides.items():
            versions = [p._version for p in model.parameters()]
            names = _recorded(session, _step, model, opt, x, y)
            moved = [p._version - v for p, v in zip(model.parameters(), versions, strict=True)]
            assert moved == tmoved == [1] * 4  # each parameter written once, as torch's
            if foreach is None:
                assert names.count("optim_sgd_step") == 1 and names.count("clear_grads") == 1
                assert "grad" not in names and "optim_sgd" not in names
            else:
                assert names.count("optim_sgd") == 4 and "optim_sgd_step" not in names
    fused, by_op = (session.fetch(*m.parameters()) for m, _ in sides.values())
    for a, b, t in zip(fused, by_op, theirs.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-5 if dtype == "float32"
                                   else 1e-12, atol=1e-7 if dtype == "float32" else 1e-14)
    # the client's versions are the server's (parameters and momentum buffers)
    for model, opt in sides.values():
        tensors = [*model.parameters(), *(st["momentum_buffer"] for st in opt.state.values())]
        infos = {i.id: i for i in session._list([t.id for t in tensors])}
        assert [t._version for t in tensors] == [infos[t.id].version for t in tensors]
    buffers = [[st["momentum_buffer"] for st in opt.state.values()] for _, opt in
               sides.values()]
    for a, b in zip(*(session.fetch(*bs) for bs in buffers), strict=True):
        np.testing.assert_array_equal(a, b)


ADAM = {
    "adam": ("Adam", dict(lr=0.01)),
    "decay": ("Adam", dict(lr=0.01, weight_decay=0.05)),
    "amsgrad": ("Adam", dict(lr=0.01, amsgrad=True, betas=(0.8, 0.95))),
    "maximize": ("Adam", dict(lr=0.01, maximize=True, eps=1e-6)),
    "adamw": ("AdamW", dict(lr=0.01)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(ADAM))
def test_the_fused_adam_step_is_the_step_op_by_op_bit_for_bit(session, name, dtype):
    kind, hyper = ADAM[name]
    theirs = _torch_model(getattr(torch, dtype))
    topt = getattr(torch.optim, kind)(theirs.parameters(), foreach=True, **hyper)
    sides = {}
    for foreach in (None, False):
        model = _ours(session, theirs, getattr(gs, dtype))
        sides[foreach] = (model, getattr(optim, kind)(model.parameters(), foreach=foreach,
                                                      **hyper))
    x, y = session.tensor(X, dtype=getattr(gs, dtype)), session.tensor(Y)
    tx, ty = torch.tensor(X, dtype=getattr(torch, dtype)), torch.tensor(Y)
    for i in range(4):
        tversions = [p._version for p in theirs.parameters()]
        _step(theirs, topt, tx, ty)
        tmoved = [p._version - v for p, v in zip(theirs.parameters(), tversions, strict=True)]
        moves = []
        for foreach, (model, opt) in sides.items():
            versions = [p._version for p in model.parameters()]
            names = _recorded(session, _step, model, opt, x, y)
            moves.append([p._version - v for p, v in zip(model.parameters(), versions,
                                                          strict=True)])
            fused = foreach is None and i > 0  # the first step makes the state op by op
            assert names.count("optim_adam_step") == (1 if fused else 0)
            assert names.count("optim_adam") == (0 if fused else 4)
            assert ("grad" in names) != fused
        assert moves[0] == moves[1]
        if kind == "Adam":  # AdamW's decay is one in-place op more in gradserve's
            assert moves[0] == tmoved == [1] * 4
    fused, by_op = (session.fetch(*m.parameters()) for m, _ in sides.values())
    for a, b, t in zip(fused, by_op, theirs.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-5 if dtype == "float32"
                                   else 1e-10, atol=1e-6 if dtype == "float32" else 1e-12)
    states = [[t for st in opt.state.values() for k, t in sorted(st.items()) if k != "step"]
              for _, opt in sides.values()]
    for a, b in zip(*(session.fetch(*ts) for ts in states), strict=True):
        np.testing.assert_array_equal(a, b)
    for model, opt in sides.values():
        tensors = [*model.parameters(), *states[0 if opt is sides[None][1] else 1]]
        infos = {i.id: i for i in session._list([t.id for t in tensors])}
        assert [t._version for t in tensors] == [infos[t.id].version for t in tensors]
        assert [st["step"] for st in opt.state.values()] == [4] * 4


@pytest.mark.parametrize("kind,hyper", [("SGD", dict(lr=0.1, momentum=0.9)),
                                        ("Adam", dict(lr=0.01))])
def test_a_group_where_only_some_parameters_have_state_goes_op_by_op(session, kind, hyper):
    theirs = _torch_model(torch.float64)
    ours = _ours(session, theirs, gs.float64)
    late = [theirs[2].bias, ours[2].bias]  # gets its first gradient a step later
    topt = getattr(torch.optim, kind)(theirs.parameters(), **hyper)
    opt = getattr(optim, kind)(ours.parameters(), **hyper)
    for i in range(4):
        for model, o, x, y in ((theirs, topt, torch.tensor(X), torch.tensor(Y)),
                               (ours, opt, session.tensor(X, dtype=gs.float64),
                                session.tensor(Y))):
            o.zero_grad()
            f = torch.nn.functional if model is theirs else nn.functional
            f.cross_entropy(model(x), y).backward()
            if i == 0:
                late[0 if model is theirs else 1].grad = None
            o.step()
    for a, t in zip(session.fetch(*ours.parameters()), theirs.parameters(), strict=True):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_zero_grad_is_one_op_and_leaves_no_grad(session):
    model = nn.Sequential(nn.Linear(3, 4, session=session), nn.Linear(4, 2, session=session))
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(session.tensor(X, dtype=gs.float32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert _recorded(session, opt.zero_grad) == ["clear_grads"]
    assert all(p.grad is None for p in model.parameters())
    infos = session._list([p.id for p in model.parameters()])
    assert [i.has_grad for i in infos] == [False] * 4


def test_the_commands_on_engine_tensors_and_their_errors(session):
    ps = [engine.tensor([1.0, 2.0], requires_grad=True), engine.tensor([[3.0]],
                                                                        requires_grad=True)]
    for p, g in zip(ps, ([0.5, -1.0], [[2.0]]), strict=True):
        p.grad = engine.tensor(g)
    outputs = OPS["optim_sgd_step"].run(tuple(ps), {"lr": 0.5, "momentum": 0.5})
    assert [b.tolist() for b in outputs] == [[0.5, -1.0], [[2.0]]]  # the new buffers
    assert [p.tolist() for p in ps] == [[0.75, 2.5], [[2.0]]]
    assert [p._version for p in ps] == [1, 1] and all(p.is_leaf for p in ps)
    OPS["clear_grads"].run(tuple(ps), {})
    assert [p.grad for p in ps] == [None, None]
    with pytest.raises(gs.AutogradError, match="has no grad"):
        OPS["optim_sgd_step"].run(tuple(ps), {"lr": 0.5})
    assert [p._version for p in ps] == [1, 1]  # refused before any write
    with pytest.raises(gs.InvalidArgumentError, match="must be a number"):
        OPS["optim_sgd_step"].run(tuple(ps), {"lr": "fast"})
    with pytest.raises(gs.InvalidArgumentError, match="needs a number as attr 'lr'"):
        OPS["optim_sgd_step"].run(tuple(ps), {})
    with pytest.raises(gs.InvalidArgumentError, match="then 1 state tensor"):
        OPS["optim_sgd_step"].run(tuple(ps[:1] * 3), {"lr": 0.1, "buffers": True})
    with pytest.raises(gs.InvalidArgumentError, match="must be true or false"):
        OPS["optim_sgd_step"].run(tuple(ps), {"lr": 0.1, "nesterov": "yes"})
    with pytest.raises(gs.InvalidArgumentError, match="then 2 state tensor"):
        OPS["optim_adam_step"].run(tuple(ps * 2), {"lr": 0.1, "beta1": 0.9, "beta2": 0.99,
                                                   "eps": 1e-8, "step_size": 1.0,
                                                   "bias2_sqrt": 1.0})
    # on the wire: the server refuses what the client would never send, at the next wait
    p = session.tensor([1.0], requires_grad=True)
    session._send("optim_sgd_step", (p,), (), {"lr": 0.1})
    with pytest.raises(gs.AutogradError, match="has no grad"):
        session.synchronize()


@pytest.mark.parametrize("op", ["optim_sgd_step", "optim_adam_step"])
def test_a_step_over_many_parameters_runs_the_node_check_between_them(op):
    """A server's compute budget (the engine's node check) holds between the parameters of a
    one-op step, as between the ops of the step op by op: what it raises ends the step with
    the parameters before it updated and the rest untouched."""
    from gradserve.engine.core.autograd import node_check, set_node_check

    ps = [engine.tensor([float(i)], requires_grad=True) for i in range(5)]
    for p in ps:
        p.grad = engine.tensor([1.0])
    inputs, attrs = tuple(ps), {"lr": 0.5}
    if op == "optim_adam_step":
        inputs += tuple(engine.zeros(1) for _ in range(10))
        attrs = {"lr": 0.5, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "step_size": 5.0,
                 "bias2_sqrt": 0.1}
    seen = []

    def check(step=None):
        seen.append(step)
        if len(seen) == 3:
            raise gs.DeadlineExceededError("past the budget")

    before = node_check()
    set_node_check(check)
    try:
        with pytest.raises(gs.DeadlineExceededError, match="past the budget"):
            OPS[op].run(inputs, attrs)
    finally:
        set_node_check(before)
    assert seen == ["optimizer step"] * 3
    assert [p._version for p in ps] == [1, 1, 0, 0, 0]
    assert [p.tolist() for p in ps[2:]] == [[2.0], [3.0], [4.0]]
