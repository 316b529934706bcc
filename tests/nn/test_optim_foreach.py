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
from gradserve._compile import whole_batches
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
            session.synchronize()
            with whole_batches():  # nothing sent by the clock: the buffer shows the step
                _step(model, opt, x, y)
                names = [op[0] for op in session._ops]
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


def test_a_group_where_only_some_parameters_have_a_buffer_goes_op_by_op(session):
    theirs = _torch_model(torch.float64)
    ours = _ours(session, theirs, gs.float64)
    late = [theirs[2].bias, ours[2].bias]  # gets its first gradient a step later
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    for i in range(3):
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
    session.synchronize()
    with whole_batches():
        opt.zero_grad()
        assert [op[0] for op in session._ops][-1:] == ["clear_grads"]
        assert sum(op[0] in ("clear_grads", "set_grad") for op in session._ops) == 1
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
    with pytest.raises(gs.InvalidArgumentError, match="one momentum buffer per parameter"):
        OPS["optim_sgd_step"].run(tuple(ps[:1] * 3), {"lr": 0.1, "buffers": True})
    # on the wire: the server refuses what the client would never send, at the next wait
    p = session.tensor([1.0], requires_grad=True)
    session._send("optim_sgd_step", (p,), (), {"lr": 0.1})
    with pytest.raises(gs.AutogradError, match="has no grad"):
        session.synchronize()
