"""gs.save / gs.load: safetensors files for module and optimizer state, in-process and on a
real server, bit for bit either way; damaged files are clear errors."""

from __future__ import annotations

import gradserve as gs
import gradserve.nn as nn
import gradserve.optim as optim
import numpy as np
import pytest
from gradserve import engine

ODD_VALUES = {
    "f32": np.array([0.1, -0.0, np.inf, -np.inf, 1e-45, np.nan], dtype=np.float32),
    "f64": np.array([[np.pi, -1e-310], [np.nextafter(1.0, 2.0), 0.0]]),
    "i64": np.array([-(2**63), 2**63 - 1, 0], dtype=np.int64),
    "b": np.array([True, False, True]),
    "scalar": np.array(3.5, dtype=np.float32),
}


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _model(where):
    where.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, session=where), nn.BatchNorm2d(2, session=where),
                         nn.Flatten(), nn.Linear(8, 3, session=where))


def _train_step(model, opt, where):
    x = where.tensor(np.random.default_rng(0).standard_normal((4, 1, 4, 4)).astype(np.float32))
    loss = nn.functional.cross_entropy(model(x), where.tensor([0, 1, 2, 0]))
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("src,dst", [("engine", "remote"), ("remote", "engine"),
                                     ("remote", "remote"), ("engine", "engine")])
def test_values_round_trip_bit_for_bit(s, tmp_path, src, dst):
    where = {"engine": engine, "remote": s}
    tensors = {k: where[src].tensor(v) for k, v in ODD_VALUES.items()}
    path = tmp_path / "values.safetensors"
    gs.save(tensors, path)
    back = gs.load(path, session=engine if dst == "engine" else s)
    assert list(back) == list(ODD_VALUES)
    for k, want in ODD_VALUES.items():
        got = back[k]
        assert isinstance(got, engine.Tensor) == (dst == "engine")
        value = got.numpy()
        assert value.dtype == want.dtype and value.shape == want.shape
        assert _bits(value) == _bits(want), k


def test_model_and_optimizer_checkpoint_resume_across_engine_and_server(s, tmp_path):
    model = _model(s)
    opt = optim.AdamW(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        _train_step(model, opt, s)
        sched.step()
    waits = s.stats.waits
    gs.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 2,
             "sched": sched.state_dict()}, tmp_path / "ck.safetensors")
    assert s.stats.waits - waits <= 2  # values fetched together, not one wait per tensor

    # resume in-process from the server's checkpoint, and train on both: same weights
    state = gs.load(tmp_path / "ck.safetensors", session=engine)  # s is current
    assert state["epoch"] == 2 and state["sched"]["last_epoch"] == 2
    local = _model(engine)
    local.load_state_dict(state["model"])
    local_opt = optim.AdamW(local.parameters(), lr=0.01)
    local_opt.load_state_dict(state["optim"])
    assert local_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.0025
    assert local_opt.state_dict()["state"][0]["step"] == 2
    _train_step(model, opt, s)
    _train_step(local, local_opt, engine)
    for (name, a), b in zip(model.state_dict().items(), local.state_dict().values(),
                            strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_loading_onto_a_session_makes_remote_tensors(s, tmp_path):
    local = _model(engine)
    # tensors, not the state dict's numpy copies: a saved numpy array loads as one (§7)
    gs.save({k: engine.tensor(v) for k, v in local.state_dict().items()},
            tmp_path / "m.safetensors")
    remote = _model(s)
    state = gs.load(tmp_path / "m.safetensors", session=s)
    assert all(t.session is s for t in state.values())
    remote.load_state_dict(state)
    for a, b in zip(remote.state_dict().values(), local.state_dict().values(), strict=True):
        assert _bits(a) == _bits(b)


def test_plain_safetensors_files_load_as_flat_dicts_when_asked(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones((2, 2), np.float32)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(gs.CheckpointError, match="without gradserve checkpoint metadata"):
        gs.load(tmp_path / "plain.safetensors")
    out = gs.load(tmp_path / "plain.safetensors", strict=False)
    assert list(out) == ["w"] and out["w"].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_damaged_files_are_clear_errors(tmp_path):
    good = tmp_path / "good.safetensors"
    gs.save({"w": engine.arange(100.0)}, good)
    data = good.read_bytes()
    cases = {
        "truncated": data[:-17],
        "flipped": data[:-5] + bytes([data[-5] ^ 0x40]) + data[-4:],
        "garbage": b"not a checkpoint at all",
        "empty": b"",
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(gs.CheckpointError, match=str(path)):
            gs.load(path)
    with pytest.raises(gs.CheckpointError, match="no checkpoint file"):
        gs.load(tmp_path / "missing.safetensors")
    assert issubclass(gs.CheckpointError, gs.GradserveError)


def test_what_cannot_be_saved_is_refused_without_pickle(tmp_path):
    with pytest.raises(TypeError, match="no pickle"):
        gs.save({"f": object()}, tmp_path / "x.safetensors")


def test_a_nested_object_of_remote_tensors_round_trips_through_bytesio(s):
    import io

    w = s.tensor([[1.0, -2.0]], requires_grad=True)
    obj = {"w": w, "tied": w, "steps": (3, [np.arange(4)]), "name": "run-1",
           "np": np.float32(0.5)}
    buf = io.BytesIO()
    gs.save(obj, buf)
    buf.seek(0)
    back = gs.load(buf, session=s, weights_only=True, map_location="cpu")
    assert back["w"].session is s and back["w"].requires_grad and back["w"].is_leaf
    assert back["tied"] is back["w"] and back["w"].tolist() == [[1.0, -2.0]]
    assert type(back["steps"]) is tuple and type(back["steps"][1][0]) is np.ndarray
    assert back["steps"][1][0].tolist() == [0, 1, 2, 3] and back["name"] == "run-1"
    assert type(back["np"]) is np.float32 and back["np"] == 0.5
