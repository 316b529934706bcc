"""Captured steps (client/_replay.py, server/_replay.py): a batch sent before goes out as a
handle plus its ids, and training gives exactly what eager recording gives."""

from __future__ import annotations

import gradserve as gs
import gradserve.nn as nn
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np
import pytest
from gradserve import engine
from gradserve.server import create_server

STEPS = 50


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
    """Batches end where a step waits or sends its backward, never because a loaded machine
    let MAX_BATCH_DELAY pass (which cuts a step at a different op each time: no replay, so
    counts of replays would depend on the machine's load). The clock's test sets its own."""
    from gradserve import _session

    monkeypatch.setattr(_session, "MAX_BATCH_DELAY", float("inf"))


class _Last(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0][:, -1]


def _mlp(w):
    return nn.Sequential(nn.Linear(12, 16, session=w), nn.ReLU(), nn.Linear(16, 5, session=w))


def _cnn(w):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, session=w), nn.BatchNorm2d(4, session=w),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 5, session=w))


def _lstm(w):
    return nn.Sequential(_Last(nn.LSTM(6, 8, batch_first=True, session=w)),
                         nn.Linear(8, 5, session=w))


def _transformer(w):
    return nn.Sequential(
        nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, session=w),
        nn.Flatten(), nn.Linear(32, 5, session=w))


PROGRAMS = {  # model, optimizer, the shape of one batch
    "mlp": (_mlp, lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9), (8, 12)),
    "cnn": (_cnn, lambda ps: optim.Adam(ps, lr=0.01), (8, 1, 6, 6)),
    "lstm": (_lstm, lambda ps: optim.SGD(ps, lr=0.1), (8, 4, 6)),
    "transformer": (_transformer, lambda ps: optim.AdamW(ps, lr=0.01), (8, 4, 8)),
}


def _train(make, make_opt, shape, where, steps=STEPS, state=None):
    """Train `steps` steps the way a torch user does (new batch uploaded each step, item()
    each step); the losses and the final state dict."""
    model = make(where)
    if state is not None:
        model.load_state_dict(state)
    opt = make_opt(model.parameters())
    rng = np.random.default_rng(5)
    losses = []
    for _ in range(steps):
        x = where.tensor(rng.standard_normal(shape).astype(np.float32))
        y = where.tensor(rng.integers(0, 5, shape[0]))
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), {k: np.asarray(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_replayed_training_is_bit_identical_to_eager(client, name):
    make, make_opt, shape = PROGRAMS[name]
    engine.manual_seed(3)
    start = {k: np.array(v) for k, v in make(engine).state_dict().items()}
    local = _train(make, make_opt, shape, engine, state=start)
    runs = []
    for replay in (False, True):
        with client.session() as s:
            s._plans.enabled = replay
            runs.append(_train(make, make_opt, shape, s, state=start))
            if replay:  # the step was captured once and then ran by handle
                assert s._plans.captures >= 1
                assert s._plans.replays >= STEPS // 2
                # and the server ran its prepared plan, its backward too (the LSTM's forward
                # spans two batches: its backward is planned across both)
                planned_runs, backward = _planned(s)
                assert planned_runs >= STEPS // 2 and backward
            else:
                assert s._plans.replays == 0
    (eager_losses, eager_state), (replay_losses, replay_state) = runs
    np.testing.assert_array_equal(replay_losses, eager_losses)
    np.testing.assert_array_equal(replay_losses, local[0])  # and what the engine computes
    for k in eager_state:
        np.testing.assert_array_equal(replay_state[k], eager_state[k], err_msg=k)
        np.testing.assert_array_equal(replay_state[k], local[1][k], err_msg=k)


def _planned(s) -> tuple[int, bool]:
    """How many runs the server's plans of session `s` made, and whether one of them plans
    a backward (the server runs in this process)."""
    from gradserve.server import _replay as server_replay

    for session, captured in list(server_replay._PLANS.items()):
        if session.id == s.id:
            plans = [c.plan for c in captured.values() if c.plan is not None]
            return sum(p.runs for p in plans), any(
                st.backward is not None for p in plans for st in p.steps)
    return 0, False


def test_a_gpu_session_replays_as_eager_too(client):
    # No CUDA Graphs: the server's plan runs the same kernels one by one, on the device the
    # tensors are on
    make, make_opt, shape = PROGRAMS["mlp"]
    engine.manual_seed(3)
    start = {k: np.array(v) for k, v in make(engine).state_dict().items()}
    runs = []
    for replay in (False, True):
        with client.session(device="cuda:0") as s:
            s._plans.enabled = replay
            runs.append(_train(make, make_opt, shape, s, steps=12, state=start))
            assert (s._plans.replays > 0) == replay
    np.testing.assert_array_equal(runs[1][0], runs[0][0])
    for k, v in runs[0][1].items():
        np.testing.assert_array_equal(runs[1][1][k], v, err_msg=k)


def test_two_clients_on_one_session_keep_their_own_plans(client):
    with client.session() as s:
        other = client.attach(s.id)
        w = s.tensor(np.ones(3, np.float32))
        s.synchronize()
        w2 = other.get(w.id)
        results = {}
        for _ in range(5):  # each captures its own step under its own handle
            for name, sess, ww in (("s", s, w), ("other", other, w2)):
                x = sess.tensor(np.arange(3, dtype=np.float32))
                out = ((x * ww + 1) * 2).exp() if name == "s" else ((x - ww) * 3).tanh().sum()
                results.setdefault(name, []).append(np.asarray(out.numpy()))
        assert s._plans.replays >= 2 and other._plans.replays >= 2
        for got in results["s"]:
            np.testing.assert_allclose(got, np.exp((np.arange(3) + 1) * 2), rtol=1e-6)
        for got in results["other"]:
            assert got == pytest.approx(np.tanh((np.arange(3) - 1) * 3).sum(), rel=1e-6)


def _replaying_session(client):
    """A session whose step `y = tanh(x @ w).sum(); backward` is captured and replaying."""
    s = client.session()
    w = s.tensor(np.ones((3, 2), np.float32), requires_grad=True)

    def step(x):
        w.grad = None
        h = (s.tensor(x) @ w).tanh()
        out = (h * h).sum()
        out.backward()
        return out.item()

    for _ in range(4):
        step(np.ones((4, 3), np.float32))
    assert s._plans.replays >= 1
    return s, w, step


def _oracle(x, w):
    h = np.tanh(x.astype(np.float64) @ w)
    return (h * h).sum()


def test_a_changed_shape_is_computed_as_eager_computes_it(client):
    # the server's plan holds the shapes it watched; a replay with another batch size does
    # not fit it and runs the eager entries from the first op that reads the new batch, so
    # it is exactly eager's step too
    s, w, step = _replaying_session(client)
    with s:
        for rows in (5, 1, 4, 7):
            x = np.arange(3 * rows, dtype=np.float32).reshape(rows, 3) / 10
            assert step(x) == pytest.approx(_oracle(x, np.ones((3, 2))), rel=1e-5)
            h = np.tanh(x.astype(np.float64) @ np.ones((3, 2)))
            np.testing.assert_allclose(w.grad.numpy(), x.T @ (2 * h * (1 - h * h)),
                                       rtol=1e-5)
        assert s._plans.replays >= 4


def test_a_different_op_or_attr_is_not_the_captured_step(client):
    s, w, _ = _replaying_session(client)
    with s:
        replays = s._plans.replays
        x = s.tensor(np.ones((4, 3), np.float32))
        out = (x @ w).sigmoid()  # sigmoid where the step has tanh
        assert ((out * out).sum()).item() == pytest.approx(
            4 * 2 * (1 / (1 + np.exp(-3.0))) ** 2, rel=1e-5)
        a = (x @ w).tanh().sum(dim=0)  # an attr the step does not have
        assert a.tolist() == pytest.approx([4 * np.tanh(3.0)] * 2, rel=1e-5)
        assert s._plans.replays == replays


def test_data_dependent_shapes_and_hooks_stay_eager_semantics(client):
    with client.session() as s:
        seen = []
        w = s.tensor(np.ones(6, np.float32), requires_grad=True)
        for i in range(6):
            w.grad = None
            x = s.tensor(np.arange(6, dtype=np.float32) - i)
            kept = (x * w)[x > 0]  # how many are kept depends on the data
            assert kept.shape == (max(0, 5 - i),)
            h = (x * w * 2)
            h.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 3)
            (h.sum() + kept.sum()).backward()
            expected = 6 * (np.arange(6) - i) + np.where(np.arange(6) - i > 0,
                                                         np.arange(6) - i, 0)
            np.testing.assert_allclose(w.grad.numpy(), expected)
        assert len(seen) == 6 and all((g == 1).all() for g in seen)


def test_an_error_in_a_replayed_step_names_the_users_line(client):
    with client.session() as s:
        table = s.tensor(np.arange(10, dtype=np.float32), requires_grad=True)

        def step(index):
            picked = table.gather(0, s.tensor(index))
            loss = (picked * picked).sum() * 2  # the line a failure must name
            loss.backward()
            return loss.item()

        for _ in range(4):
            step(np.array([1, 2, 3]))
        assert s._plans.replays >= 1
        with pytest.raises(gs.GradserveError) as info:
            step(np.array([1, 2, 30]))  # out of range: only the server can tell
        assert "test_replay.py:" in str(info.value)
        assert step(np.array([0, 1, 2])) == 2 * (0 + 1 + 4)  # the session carries on


def _ops(n):
    """A recorded batch as the session buffers it, ids numbered from `n`."""
    return [["tensor", [{"d": 0}], [f"a.{n}"], None, 0],
            ["mul", ["a.1", f"a.{n}"], [f"a.{n + 1}"], None, 0],
            ["sum", [f"a.{n + 1}"], [f"a.{n + 2}"], {"dim": [0]}, 0],
            ["add", [f"a.{n + 2}", 2.0], [f"a.{n + 3}"], None, 1]]


def test_plans_capture_on_the_second_sighting_and_rewrite_after_a_move():
    import json

    from gradserve._replay import Plans
    from gradserve.v1.codec import pack_ops

    plans = Plans("p.")
    assert plans.pack(_ops(10)) == pack_ops(_ops(10))  # first sighting: as it is
    capture = json.loads(plans.pack(_ops(20)))
    assert capture[0][:4] == ["@capture", "p.0", ["a.20", "a.1", "a.21", "a.22", "a.23"], []]
    assert capture[0][4][1] == ["mul", [[1], [0]], [2], None, 0]
    replay = plans.pack(_ops(30))
    assert json.loads(replay) == [["@replay", "p.0", ["a.30", "a.1", "a.31", "a.32", "a.33"], []]]
    lr = _ops(35)
    lr[3][3] = {"alpha": 0.5}  # a float attr is a value of the step, not of its template
    plans.pack(lr)
    lr[3][3] = {"alpha": 0.25}
    assert json.loads(plans.pack(lr))[0][0] == "@capture"
    lr[3][3] = {"alpha": 0.125}
    assert json.loads(plans.pack(lr))[0][3] == [0.125]
    other = _ops(40)
    other[2][3] = {"dim": [1]}  # a different attr is a different template
    assert plans.pack(other) == pack_ops(other)
    plans.moved()  # resent to a server that holds no plans: the replay carries its template
    assert json.loads(plans.eager(replay))[0][:2] == ["@capture", "p.0"]
    assert plans.eager(pack_ops(other)) == pack_ops(other)
    assert plans.pack(_ops(50)) == pack_ops(_ops(50))  # captured anew from here


def test_the_server_expands_a_replay_into_the_eager_entries():
    import json

    from gradserve._replay import Plans
    from gradserve.engine import InvalidArgumentError
    from gradserve.server import _replay as server_replay
    from gradserve.server._requests import OpSource

    class Session:  # what the plans are kept for
        pass

    plans, session = Plans("p."), Session()
    plans.pack(_ops(10))

    def run(ops):
        (source,) = server_replay.expand(session, [OpSource(json.loads(plans.pack(ops)),
                                                            None, None)])
        return list(source.entries)

    assert run(_ops(20)) == _ops(20)  # the capture
    assert run(_ops(30)) == _ops(30)  # the replay
    lr = _ops(35)
    for alpha in (0.5, 0.25, 0.125):
        lr[3][3] = {"alpha": alpha}
        assert run(lr) == lr
    assert server_replay.plan_count(session) == 2
    with pytest.raises(InvalidArgumentError, match="has not captured"):
        list(server_replay.expand(Session(), [OpSource([["@replay", "p.0", ["x"], []]], None,
                                                       None)])[0].entries)
    too_long = json.loads(plans.pack(_ops(40)))  # a replay; as a capture it has 4 entries
    capture = [["@capture", "p.1", too_long[0][2], [], _ops(0)]]
    from gradserve.server._errors import ResourceExhaustedError

    with pytest.raises(ResourceExhaustedError, match="limit of 3 per request"):
        list(server_replay.expand(session, [OpSource(capture, None, None)], 3)[0].entries)
    with pytest.raises(InvalidArgumentError, match="beyond the 1 ids"):
        list(server_replay.expand(session, [OpSource([["@replay", "p.0", ["x"], []]], None,
                                                     None)])[0].entries)


def test_compile_returns_a_module_like_torch_compile(client):
    with client.session() as s:
        lin = nn.Linear(3, 2, session=s)
        model = gs.compile(lin)
        assert type(model).__name__ == "OptimizedModule" and model._orig_mod is lin
        assert list(model.state_dict()) == ["_orig_mod.weight", "_orig_mod.bias"]
        assert model.in_features == 3 and model.weight is lin.weight
        x = s.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
        np.testing.assert_array_equal(model(x).detach().numpy(), lin(x).detach().numpy())
        assert gs.compile(lin, disable=True) is lin
        with pytest.raises(RuntimeError, match="expects a function or an nn.Module"):
            gs.compile(3)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_compiled_step_replays_where_the_clock_would_cut_it(client, monkeypatch, compiled):
    import types

    from gradserve import _session

    # A clock that moves by a random amount per op: MAX_BATCH_DELAY then passes at a
    # different op of each step (what a busy machine does), cutting eager batches anywhere
    clock = {"now": 0.0, "rng": np.random.default_rng(0)}

    def monotonic():
        clock["now"] += clock["rng"].integers(0, 4) * 1e-3
        return clock["now"]

    monkeypatch.setattr(_session, "time", types.SimpleNamespace(monotonic=monotonic))
    monkeypatch.setattr(_session, "MAX_BATCH_DELAY", 0.002)
    make, make_opt, shape = PROGRAMS["mlp"]
    engine.manual_seed(3)
    start = {k: np.array(v) for k, v in make(engine).state_dict().items()}
    local = _train(make, make_opt, shape, engine, state=start)
    with client.session() as s:
        model = make(s)
        model.load_state_dict(start)
        opt = make_opt(model.parameters())
        rng = np.random.default_rng(5)

        def step(x, y):
            x, y = s.tensor(x), s.tensor(y)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        step = gs.compile(step) if compiled else step
        before = s.stats.requests
        losses = [step(rng.standard_normal(shape).astype(np.float32),
                       rng.integers(0, 5, shape[0])).item() for _ in range(STEPS)]
        if compiled:  # each step one message, from the third on a replay
            assert s.stats.requests - before == STEPS
            assert s._plans.replays >= STEPS - 3
        else:  # the clock cut steps in two
            assert s.stats.requests - before > STEPS
        np.testing.assert_array_equal(np.array(losses), local[0])
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(np.asarray(v), local[1][k], err_msg=k)


def test_a_session_keeps_its_newest_plans_within_its_entry_budget(monkeypatch):
    from gradserve.engine import InvalidArgumentError
    from gradserve.server import _replay as server_replay
    from gradserve.server._requests import OpSource

    monkeypatch.setattr(server_replay, "MAX_ENTRIES", 10)

    class Session:
        pass

    session = Session()
    template = [["neg", [[0]], [1], None, 0]] * 4

    def run(kind, handle):
        entry = [kind, handle, ["a", "b"], []] + ([template] if kind == "@capture" else [])
        return list(server_replay.expand(session, [OpSource([entry], None, None)])[0].entries)

    for handle in ("h.0", "h.1", "h.2"):  # 12 entries: the oldest plan goes
        assert run("@capture", handle) == [["neg", ["a"], ["b"], None, 0]] * 4
    assert server_replay.plan_count(session) == 2
    assert len(run("@replay", "h.2")) == len(run("@replay", "h.1")) == 4
    with pytest.raises(InvalidArgumentError, match="has not captured"):
        run("@replay", "h.0")
