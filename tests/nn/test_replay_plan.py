"""A captured step's prepared plan (server/_plan.py, engine/surface/prepared*.py): the plan is
what runs a replayed step (no entry read, no op through the eager dispatch), it leaves the
session exactly as eager does, and every run it does not fit goes the eager way."""

from __future__ import annotations

import gradserve as gs
import gradserve.nn as nn
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np
import pytest
from gradserve import engine
from gradserve.engine.core import dispatch
from gradserve.engine.surface.tensor import KIND
from gradserve.server import _executor, create_server
from gradserve.server import _replay as server_replay


@pytest.fixture(scope="module")
def client():
    # cuda:0 is the seam's test double where there is no GPU (tests/fakecuda)
    server, port = create_server("127.0.0.1:0", devices=("cpu", "cuda:0"))
    server.start()
    try:
        with gs.connect(f"127.0.0.1:{port}") as c:
            yield c
    finally:
        server.stop(None)


@pytest.fixture(autouse=True)
def whole_batches(monkeypatch):
    """Batches end where a step waits, never because a loaded machine let the batch clock
    pass (which would cut steps at different ops: other templates, other counts)."""
    from gradserve import _session

    monkeypatch.setattr(_session, "MAX_BATCH_DELAY", float("inf"))


@pytest.fixture
def counted(monkeypatch):
    """How many entries went through the executor's eager path, and how many ops through
    the engine's eager op sequence (the server's: the client's own recording is not
    counted), since the last reset."""
    counts = {"entries": 0, "dispatch": 0}
    run_one, apply = _executor.Executor._run_one, dispatch.apply

    def counted_run_one(self, *args):
        counts["entries"] += 1
        return run_one(self, *args)

    def counted_apply(kind, *args, **kwargs):
        if kind is KIND:
            counts["dispatch"] += 1
        return apply(kind, *args, **kwargs)

    monkeypatch.setattr(_executor.Executor, "_run_one", counted_run_one)
    monkeypatch.setattr(dispatch, "apply", counted_apply)
    return counts


def _plans(s) -> list:
    """The server's plans of session `s` (this process runs the server)."""
    for session, captured in list(server_replay._PLANS.items()):
        if session.id == s.id:
            return [c.plan for c in captured.values() if c.plan is not None]
    return []


def _mlp(where):
    return nn.Sequential(nn.Linear(12, 16, session=where), nn.ReLU(),
                         nn.Linear(16, 5, session=where))


def _setup(where, seed=3):
    engine.manual_seed(seed)
    start = _mlp(engine).state_dict()
    model = _mlp(where)
    model.load_state_dict(start)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(5)
    x = where.tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = where.tensor(rng.integers(0, 5, 8))
    return model, opt, x, y


def _step(model, opt, x, y, zero=True):
    if zero:
        opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_a_replayed_step_runs_its_plan_and_nothing_eager(client, counted, device):
    # on cuda:0 (the test double of tests/fakecuda) the plan runs the same cupy kernels one
    # by one: no CUDA Graphs
    expected = _oracle_losses(9)
    with client.session(device=device) as s:
        model, opt, x, y = _setup(s)
        losses = []
        for _ in range(4):  # sent, captured (the capture's run is watched), replayed
            losses.append(_step(model, opt, x, y))
        (plan,) = _plans(s)
        runs = plan.runs
        counted.update(entries=0, dispatch=0)
        for _ in range(5):
            losses.append(_step(model, opt, x, y))
        # every entry was prepared: the forward, the commands, the optimizer's in-place
        # steps; the backward ran its watched kernels without the walk
        assert counted == {"entries": 0, "dispatch": 0}
        assert plan.runs == runs + 5 and plan.fallbacks == 0
        assert losses == expected[0]
        for p, w in zip(model.parameters(), expected[1], strict=True):
            np.testing.assert_array_equal(p.detach().cpu().numpy(), w)
        assert plan.prepared() == len(plan.steps)
        assert [st.backward is not None for st in plan.steps if st.name == "backward"] == [True]


def _state(s) -> list:
    """Every tensor the session holds, as a caller can know it (not its id)."""
    return [(i.shape, i.strides, i.dtype, i.device, i.requires_grad, i.is_leaf, i.grad_fn,
             i.version, i.has_grad) for i in s._list()]


def test_a_planned_step_leaves_the_session_as_eager_leaves_it(client):
    runs = []
    for plans in (False, True):
        with client.session() as s:
            s._plans.enabled = plans
            model, opt, x, y = _setup(s)
            losses = [_step(model, opt, x, y) for _ in range(8)]
            loss = F.cross_entropy(model(x), y)  # a graph through the planned weights
            s.synchronize()
            runs.append((losses, _state(s), [np.asarray(p.grad.numpy()) for p in
                                              model.parameters()],
                         [p._version for p in model.parameters()], loss.grad_fn.name()))
            if plans:
                assert _plans(s) and _plans(s)[0].runs >= 5
            with pytest.raises(RuntimeError, match="backward through the graph a second"):
                lin = model[0]
                out = lin(x).sum()
                out.backward()
                out.backward()
    (eager, planned) = runs
    assert planned[0] == eager[0]
    assert planned[1] == eager[1]
    for a, b in zip(planned[2], eager[2], strict=True):
        np.testing.assert_array_equal(a, b)
    assert planned[3:] == eager[3:]


def _oracle_losses(steps, zero=True, batch_rows=None):
    model, opt, x, y = _setup(engine)
    out = []
    for i in range(steps):
        if batch_rows is not None and batch_rows[i] is not None:
            x, y = batch_rows[i]
            x, y = engine.tensor(x), engine.tensor(y)
        out.append(_step(model, opt, x, y, zero))
    return out, [p.detach().numpy().copy() for p in model.parameters()]


def test_a_run_with_another_shape_or_dtype_goes_eager_from_there(client):
    rng = np.random.default_rng(7)
    batches = [None] * 12
    batches[5] = (rng.standard_normal((3, 12)).astype(np.float32), rng.integers(0, 5, 3))
    batches[8] = (rng.standard_normal((8, 12)).astype(np.float32), rng.integers(0, 5, 8))
    expected, weights = _oracle_losses(12, batch_rows=batches)
    with client.session() as s:
        model, opt, x, y = _setup(s)
        losses, plans = [], []
        for i in range(12):
            if batches[i] is not None:  # new data in a batch of its own: the step's
                x, y = s.tensor(batches[i][0]), s.tensor(batches[i][1])  # template is
                s.synchronize()  # the same, its input's shape is not
            losses.append(_step(model, opt, x, y))
            plans.append(_plans(s))
        # the plan fitted until the batch of 3 rows came; that run went the eager way from
        # the first op that read it, and the next run made the plan again
        assert [len(p) for p in plans[2:]] == [1] * 3 + [0] + [1] * 2 + [0] + [1] * 3
        assert plans[4][0] is not plans[6][0] and plans[6][0] is not plans[11][0]
        assert plans[11][0].runs == 2 and plans[11][0].fallbacks == 0
        assert losses == expected
        for p, w in zip(model.parameters(), weights, strict=True):
            np.testing.assert_array_equal(p.detach().numpy(), w)


def test_a_run_with_another_dtype_goes_eager_from_there(client):
    def program(where, sync):
        w = where.tensor(np.linspace(-1, 1, 6, dtype=np.float32), requires_grad=True)
        out = []
        for dtype in [np.float32] * 4 + [np.float64] * 3 + [np.float32] * 2:
            x = where.tensor(np.arange(6, dtype=dtype) / 7)
            sync()  # the new x alone: the step's template is the same, x's dtype is not
            w.grad = None
            loss = ((x * w).tanh() * 3).sum()  # float64 where x is: type promotion
            loss.backward()
            out.append((loss.item(), w.grad.numpy().copy(), loss.dtype))
        return out

    expected = program(engine, lambda: None)
    with client.session() as s:
        seen = []

        def sync():
            s.synchronize()
            seen.append(tuple(_plans(s)))

        got = program(s, sync)
        seen.append(tuple(_plans(s)))
        # the step's plan was made, then dropped where x's dtype changed (float64, then
        # float32 again) and made anew from the next run (`seen` keeps them all alive)
        made = {id(p) for plans in seen for p in plans}
        assert len(made) == 3 and [len(p) for p in seen] == [0, 0, 1, 1, 1, 0, 1, 1, 0, 1]
    assert len(got) == len(expected)
    for (a, ga, da), (b, gb, db) in zip(got, expected, strict=True):
        assert a == b and da == db
        np.testing.assert_array_equal(ga, gb)


def test_gradients_that_accumulate_and_hooks_go_the_eager_way(client):
    expected, weights = _oracle_losses(8, zero=False)
    with client.session() as s:
        model, opt, x, y = _setup(s)
        losses = [_step(model, opt, x, y, zero=False) for _ in range(8)]
        assert losses == expected  # .grad added into in place, as eager: never planned
        for p, w in zip(model.parameters(), weights, strict=True):
            np.testing.assert_array_equal(p.detach().numpy(), w)
    with client.session() as s:
        model, opt, x, y = _setup(s)
        for _ in range(4):
            _step(model, opt, x, y)
        (plan,) = _plans(s)
        seen = []
        w = model[0].weight
        handle = w.register_hook(lambda g: seen.append(1) or g * 0)
        s.synchronize()
        runs = plan.runs
        _step(model, opt, x, y)  # a hook ends the SDK's capture: this step is eager's
        assert seen == [1] and plan.runs == runs
        assert not np.abs(w.grad.numpy()).any()
        handle.remove()
        s.synchronize()
        _step(model, opt, x, y)  # the captured step again: its plan
        assert plan.runs == runs + 1 and seen == [1]
        assert np.abs(w.grad.numpy()).sum() > 0


def _engine_graph(x, w, b) -> list:
    """The step's tensors, each as a server's plan holds them: bound to a slot."""
    mm = x @ w
    z = mm + b
    h = z.relu()
    hh = h * h
    return [x, w, b, mm, z, h, hh, hh.mean()]


def _random_engine_graph(rng) -> list:
    x = engine.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w = engine.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    b = engine.tensor(rng.standard_normal(2).astype(np.float32), requires_grad=True)
    return _engine_graph(x, w, b)


def test_a_planned_backward_runs_only_on_the_graph_it_watched():
    """engine/surface/prepared_backward.py on engine tensors: a plan from one watched
    backward gives eager's bits on a new graph of the same shape, and declines (changing
    nothing) where eager must decide: a hook, a grad to add into, a saved tensor changed in
    place, another graph."""
    from gradserve.engine.seam import watch_backward

    rng = np.random.default_rng(0)

    def fresh():
        return _random_engine_graph(rng)

    slots = fresh()
    plan = watch_backward(7, slots, lambda: slots[7].backward(), made=range(3, 8))
    assert plan is not None and plan.acc  # both leaves' gradients come from its kernels
    for _ in range(3):
        planned, eager = fresh(), None
        eager = [engine.tensor(t.detach().numpy().copy(), requires_grad=t.requires_grad)
                 for t in planned[:3]]
        eager = _engine_graph(*eager)
        assert plan.run(planned)
        eager[7].backward()
        for p, e in zip(planned[1:3], eager[1:3], strict=True):
            np.testing.assert_array_equal(p.grad.numpy(), e.grad.numpy())
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            planned[7].backward()  # freed, as eager frees it

    hooked = fresh()
    hooked[1].register_hook(lambda g: g * 2)
    assert not plan.run(hooked) and hooked[1].grad is None and hooked[2].grad is None
    accumulating = fresh()
    accumulating[2].grad = engine.zeros(2)
    assert not plan.run(accumulating) and accumulating[1].grad is None
    changed = fresh()
    changed[0].mul_(2)  # what the matmul saved for w's gradient
    assert not plan.run(changed)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        changed[7].backward()  # eager's error, from eager's backward
    other = fresh()
    other[7] = (other[3] * 2).mean()
    assert not plan.run(other) and other[1].grad is None


def _linear_graph(x, w, b, w2) -> list:
    """Two Linear layers as nn.Linear records them (a transposed weight: the weight's
    gradient is a view of a matrix product's result), a loss whose backward makes a sum
    of gradients that meet."""
    wt = w.t()
    mm = x @ wt
    z = mm + b
    h = z.relu()
    w2t = w2.t()
    out = h @ w2t
    sq = out * out
    m, total = sq.mean(), out.sum()
    return [x, w, b, w2, wt, mm, z, h, w2t, out, sq, m, total, m + total]


def test_a_planned_backward_gives_eagers_gradient_tensors():
    """The plan runs the kernels nobody else sees on arrays and the ops whose outputs become
    gradients as eager's ops: each leaf's .grad has eager's bits, layout, dtype and view-ness
    (a gradient that is a view of a kernel's result stays one, its base a tensor)."""
    from gradserve.engine.seam import watch_backward

    rng = np.random.default_rng(2)

    def leaves():
        return [engine.tensor(rng.standard_normal(shape).astype(np.float32),
                              requires_grad=rg)
                for shape, rg in (((5, 4), False), ((3, 4), True), ((3,), True),
                                  ((2, 3), True))]

    slots = _linear_graph(*leaves())
    plan = watch_backward(13, slots, lambda: slots[13].backward(), made=range(4, 14))
    assert plan is not None
    on_arrays = [step[4] for step in plan.steps]
    assert any(on_arrays) and not all(on_arrays)
    for _ in range(3):
        planned = leaves()
        eager = [engine.tensor(t.detach().numpy().copy(), requires_grad=t.requires_grad)
                 for t in planned]
        planned, eager = _linear_graph(*planned), _linear_graph(*eager)
        assert plan.run(planned)
        eager[13].backward()
        for p, e in zip(planned[1:4], eager[1:4], strict=True):
            np.testing.assert_array_equal(p.grad.numpy(), e.grad.numpy())
            assert p.grad.dtype == e.grad.dtype and p.grad.stride() == e.grad.stride()
            assert (p.grad._base is None) == (e.grad._base is None)
            assert p.grad.grad_fn is None and not p.grad.requires_grad


def test_a_planned_backward_runs_the_servers_node_check():
    """The compute budget (`set_node_check`) stops a planned backward as it stops eager's:
    the check runs between the plan's kernels and what it raises ends the backward."""
    from gradserve.engine.core.autograd import node_check
    from gradserve.engine.seam import set_node_check, watch_backward

    rng = np.random.default_rng(1)

    def fresh():
        return _random_engine_graph(rng)

    slots = fresh()
    plan = watch_backward(7, slots, lambda: slots[7].backward(), made=range(3, 8))
    calls = []

    def over_budget():
        calls.append(1)
        if len(calls) == 2:
            raise TimeoutError("over the budget")

    servers = node_check()  # a server made in this process set its own: put it back after
    set_node_check(over_budget)
    try:
        with pytest.raises(TimeoutError, match="over the budget"):
            plan.run(fresh())
    finally:
        set_node_check(servers)
    assert len(calls) == 2


def test_retain_graph_and_a_second_backward_are_eagers(client):
    def program(where):
        model, opt, x, y = _setup(where)
        out = []
        for _ in range(6):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward(retain_graph=True)
            (loss * 2).backward()
            opt.step()
            out.append(loss.item())
        return out, [p.detach().numpy().copy() for p in model.parameters()]

    expected = program(engine)
    with client.session() as s:
        got = program(s)
        assert _plans(s)
    assert got[0] == expected[0]
    for a, b in zip(got[1], expected[1], strict=True):
        np.testing.assert_array_equal(a, b)


def _deep(where):
    layers = [nn.Linear(12, 12, session=where)]
    # more ops than one batch (64): the step comes as several batches, each of them at least
    # MIN_OPS long (a shorter one is sent as its entries, never replayed)
    for _ in range(39):
        layers += [nn.Tanh(), nn.Linear(12, 12, session=where)]
    return nn.Sequential(*layers, nn.Linear(12, 5, session=where))


def test_a_backward_reaching_earlier_batches_of_the_step_is_planned(client, counted):
    def program(where, steps, then=None, after=None):
        engine.manual_seed(4)
        start = _deep(engine).state_dict()
        model = _deep(where)
        model.load_state_dict(start)
        opt = optim.SGD(model.parameters(), lr=0.01)
        rng = np.random.default_rng(6)
        x = where.tensor(rng.standard_normal((8, 12)).astype(np.float32))
        y = where.tensor(rng.integers(0, 5, 8))
        losses = []
        for i in range(steps):
            if i == 4 and then is not None:
                then()
            losses.append(_step(model, opt, x, y))
        if after is not None:
            after()
        return losses, [p.detach().cpu().numpy() for p in model.parameters()]

    expected = program(engine, 9)
    with client.session() as s:
        def watch():
            plans = [p for p in _plans(s)
                     if any(st.backward is not None for st in p.steps)]
            assert len(plans) == 1 and len(_plans(s)) > 2  # the step came in batches
            (step,) = [st for st in plans[0].steps if st.backward is not None]
            assert step.chain  # planned across the earlier batches' runs
            watch.plan = plans[0]
            counted.update(entries=0, dispatch=0)

        def check():
            # every replayed batch ran its plan, the backward included: no op through the
            # eager dispatch on the server
            assert counted == {"entries": 0, "dispatch": 0}
            assert watch.plan.fallbacks == 0 and watch.plan.runs >= 5

        got = program(s, 9, watch, check)
    assert got[0] == expected[0]
    for a, b in zip(got[1], expected[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_step_in_batches_whose_runs_differ_goes_eager_with_eagers_bits(client):
    # a batch of other rows now and then: the first batch's run does not fit its plan, so
    # neither do the later batches nor the backward planned across them; all give eager's
    def program(where):
        engine.manual_seed(5)
        start = _deep(engine).state_dict()
        model = _deep(where)
        model.load_state_dict(start)
        opt = optim.SGD(model.parameters(), lr=0.01)
        rng = np.random.default_rng(7)
        losses = []
        for i in range(10):
            rows = 6 if i in (5, 7) else 8
            x = where.tensor(rng.standard_normal((rows, 12)).astype(np.float32))
            y = where.tensor(rng.integers(0, 5, rows))
            losses.append(_step(model, opt, x, y))
        return losses, [p.detach().cpu().numpy() for p in model.parameters()]

    expected = program(engine)
    with client.session() as s:
        got = program(s)
        assert any(st.chain for p in _plans(s) for st in p.steps)
    assert got[0] == expected[0]
    for a, b in zip(got[1], expected[1], strict=True):
        np.testing.assert_array_equal(a, b)
