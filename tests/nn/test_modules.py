"""gradserve.nn modules: registration, initialisation, state_dict, modes, repr, gradients."""

import math
from collections import OrderedDict

import gradserve.nn as nn
import numpy as np
import pytest
from gradserve import engine


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _mlp(dtype=None):
    return nn.Sequential(nn.Linear(3, 5, dtype=dtype), nn.ReLU(), nn.Linear(5, 2, dtype=dtype))


# -- Linear ------------------------------------------------------------------------------------
def test_linear_parameters_are_leaves_with_torch_shapes():
    fc = nn.Linear(4, 3)
    assert fc.weight.shape == (3, 4) and fc.bias.shape == (3,)
    for p in fc.parameters():
        assert p.is_leaf and p.requires_grad and p.grad_fn is None
        assert p.dtype is engine.float32
    assert nn.Linear(4, 3, dtype=engine.float64).weight.dtype is engine.float64
    no_bias = nn.Linear(4, 3, bias=False)
    assert no_bias.bias is None
    assert [n for n, _ in no_bias.named_parameters()] == ["weight"]


def test_linear_initialisation_is_torchs_uniform():
    engine.manual_seed(0)
    fc = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (fc.weight, fc.bias):
        v = p.detach().numpy()
        assert v.min() >= -bound and v.max() <= bound
    w = fc.weight.detach().numpy()
    assert abs(w.mean()) < 0.01 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound  # std of U(-b, b)
    assert w.max() > 0.99 * bound and w.min() < -0.99 * bound


def test_linear_is_seeded_by_the_session_generator():
    engine.manual_seed(5)
    a = nn.Linear(3, 2).state_dict()
    engine.manual_seed(5)
    b = nn.Linear(3, 2).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_linear_gradients(gradcheck):
    fc = nn.Linear(3, 2, dtype=engine.float64)

    def run(x, w, b):
        fc.weight, fc.bias = w, b
        return fc(x)

    rng = np.random.default_rng(1)
    gradcheck(run, rng.standard_normal((4, 3)), rng.standard_normal((2, 3)),
              rng.standard_normal(2))


def test_mlp_gradients_wrt_every_parameter(gradcheck):
    engine.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4, dtype=engine.float64), nn.Tanh(),
                          nn.Linear(4, 4, dtype=engine.float64), nn.Sigmoid(),
                          nn.Linear(4, 3, dtype=engine.float64))
    names = [n for n, _ in model.named_parameters()]
    start = model.state_dict()
    x = np.random.default_rng(3).standard_normal((5, 3))
    target = engine.tensor([0, 2, 1, 1, 0])

    def loss(*params):
        for name, p in zip(names, params, strict=True):
            layer, attr = name.split(".")
            setattr(model[int(layer)], attr, p)
        return nn.CrossEntropyLoss()(model(engine.tensor(x, dtype=engine.float64)), target)

    gradcheck(loss, *[start[n] for n in names])


def test_activation_modules_match_functional():
    x = engine.randn(3, 4)
    np.testing.assert_array_equal(nn.ReLU()(x).numpy(), x.relu().numpy())
    np.testing.assert_array_equal(nn.Tanh()(x).numpy(), x.tanh().numpy())
    np.testing.assert_array_equal(nn.Sigmoid()(x).numpy(), x.sigmoid().numpy())


def test_loss_modules_match_functional():
    x, y = engine.randn(4, 3), engine.randn(4, 3)
    t = engine.tensor([0, 1, 2, -100])
    assert nn.MSELoss()(x, y).item() == nn.functional.mse_loss(x, y).item()
    assert nn.MSELoss(reduction="sum")(x, y).item() == pytest.approx(
        ((x - y) ** 2).sum().item(), rel=1e-6)
    assert nn.CrossEntropyLoss()(x, t).item() == nn.functional.cross_entropy(x, t).item()
    assert nn.CrossEntropyLoss(ignore_index=0)(x, t.clamp(min=0)).item() == pytest.approx(
        nn.functional.cross_entropy(x, t.clamp(min=0), ignore_index=0).item())
    logp = x.log_softmax(1)
    assert nn.NLLLoss(reduction="none")(logp, t).shape == (4,)
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="avg")


# -- registration and traversal ---------------------------------------------------------------
def test_named_parameters_are_keyed_like_torch():
    assert [n for n, _ in TwoLayer().named_parameters()] == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in _mlp().named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    model = TwoLayer()
    assert [n for n, _ in model.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in model.named_modules()] == ["", "fc1", "act", "fc2"]
    assert list(model.children())[0] is model.fc1
    assert len(list(model.parameters(recurse=False))) == 0


def test_shared_parameters_are_listed_once():
    fc = nn.Linear(2, 2)
    model = nn.Sequential(fc, nn.ReLU(), fc)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # Sequential, fc, ReLU


def test_attribute_assignment_registers_only_leaf_tensors_that_require_grad():
    m = nn.Module()
    m.scale = engine.ones(3, requires_grad=True)
    m.plain = engine.ones(3)  # not a parameter, as a plain tensor is not in torch
    m.derived = m.scale * 2  # a non-leaf: not a parameter either
    m.other = nn.Parameter(engine.zeros(2))
    assert [n for n, _ in m.named_parameters()] == ["scale", "other"]
    assert m.other.is_leaf and m.other.requires_grad
    m.scale = None
    assert [n for n, _ in m.named_parameters()] == ["other"]
    assert "scale" in m._parameters  # like torch: the slot stays, holding None
    with pytest.raises(TypeError, match="as parameter"):
        m.other = 3.0
    del m.other
    assert list(m.parameters()) == []
    with pytest.raises(AttributeError):
        _ = m.missing


def test_buffers_go_in_state_dict_unless_not_persistent():
    m = nn.Module()
    m.register_buffer("running", engine.zeros(2))
    m.register_buffer("scratch", engine.zeros(2), persistent=False)
    m.w = engine.ones(1, requires_grad=True)
    assert list(m.state_dict()) == ["w", "running"]
    assert [n for n, _ in m.named_buffers()] == ["running", "scratch"]
    m.load_state_dict({"w": np.array([4.0]), "running": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(m.running.numpy(), [1.0, 2.0])


def test_sequential_container():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2]
    assert list(model[1:]) == layers[1:]
    with pytest.raises(IndexError):
        model[3]
    model.append(nn.Sigmoid())
    assert len(model) == 4 and [n for n, _ in model.named_children()][-1] == "3"
    named = nn.Sequential(OrderedDict(body=nn.Linear(2, 2), head=nn.Linear(2, 1)))
    assert [n for n, _ in named.named_parameters()] == [
        "body.weight", "body.bias", "head.weight", "head.bias"]
    assert named(engine.randn(5, 2)).shape == (5, 1)


def test_forward_is_required():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(engine.ones(1))


# -- modes and gradients -----------------------------------------------------------------------
def test_train_and_eval_reach_every_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.Dropout()))
    assert model.training
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    x = engine.ones(100, 2)
    out = model[1](x)
    assert out is x
    model.train()
    assert all(m.training for m in model.modules())
    assert (model[1](x).numpy() == 0).any()


def test_zero_grad_drops_or_zeroes():
    model = _mlp()
    model(engine.randn(4, 3)).sum().backward()
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        assert p.grad is not None and not p.grad.numpy().any()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_requires_grad_switch():
    model = _mlp().requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    assert len(list(model.parameters())) == 4  # still registered


# -- state_dict --------------------------------------------------------------------------------
def test_state_dict_round_trip_copies_values_in_place():
    engine.manual_seed(0)
    src, dst = _mlp(), _mlp()
    x = engine.randn(6, 3)
    before = [id(p) for p in dst.parameters()]
    versions = [p._version for p in dst.parameters()]
    result = dst.load_state_dict(src.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert [id(p) for p in dst.parameters()] == before  # the same tensors, updated in place
    assert [p._version for p in dst.parameters()] == [v + 1 for v in versions]
    for p in dst.parameters():
        assert p.is_leaf and p.requires_grad
    np.testing.assert_array_equal(dst(x).detach().numpy(), src(x).detach().numpy())


def test_state_dict_holds_numpy_copies():
    model = _mlp(dtype=engine.float64)
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in sd.values())
    sd["0.bias"][:] = 123.0
    assert not (model[0].bias.detach().numpy() == 123.0).any()


def test_load_state_dict_accepts_tensors_and_casts_to_the_parameter_dtype():
    model = _mlp()
    values = {k: engine.tensor(v, dtype=engine.float64) for k, v in _mlp().state_dict().items()}
    model.load_state_dict(values)
    assert model[0].weight.dtype is engine.float32
    np.testing.assert_allclose(model[0].weight.detach().numpy(), values["0.weight"].numpy(),
                               rtol=1e-6)


def test_load_state_dict_strictness():
    model = _mlp()
    sd = model.state_dict()
    partial = {k: v for k, v in sd.items() if k != "2.bias"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2.bias"'):
        model.load_state_dict(partial)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        model.load_state_dict({**sd, "extra": np.zeros(1)})
    bad = {**sd, "0.weight": np.zeros((2, 2))}
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: copying a param with "
                                           r"shape torch.Size\(\[2, 2\]\)"):
        model.load_state_dict(bad)
    result = model.load_state_dict({**partial, "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["2.bias"] and result.unexpected_keys == ["extra"]


# -- repr --------------------------------------------------------------------------------------
EXPECTED_REPR = """\
Sequential(
  (0): Linear(in_features=784, out_features=512, bias=True)
  (1): ReLU()
  (2): Dropout(p=0.1, inplace=False)
  (3): Sequential(
    (0): Linear(in_features=512, out_features=10, bias=False)
    (1): Tanh()
  )
  (4): MSELoss()
)"""


def test_repr_reads_like_torch():
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.1),
                          nn.Sequential(nn.Linear(512, 10, bias=False), nn.Tanh()), nn.MSELoss())
    assert repr(model) == EXPECTED_REPR
    assert repr(TwoLayer()).startswith("TwoLayer(\n  (fc1): Linear(in_features=4")
