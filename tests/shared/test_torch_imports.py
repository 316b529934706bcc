"""What torch programs import and construct first, against torch: the importable modules,
`gs.Size`, the legacy constructors, `autograd.Variable`, `nn.Parameter`, `Module.apply`
order and the default dtype/device, on engine tensors and on a current session (`M`)."""

from __future__ import annotations

import importlib

import gradserve as gs
import gradserve.nn as nn
import numpy as np
import pytest
import torch

MODULES = ["autograd", "autograd.functional", "autograd.function", "utils", "utils.data",
           "nn.utils.rnn",
           "nn", "nn.functional", "nn.init", "nn.utils", "nn.parameter", "optim",
           "optim.lr_scheduler", "optim.optimizer", "backends", "backends.cudnn",
           "backends.mps", "backends.cuda", "cuda"]


@pytest.mark.parametrize("name", MODULES)
def test_modules_import_as_torch_s(name):
    torch_mod = importlib.import_module(f"torch.{name}")
    ours = importlib.import_module(f"gradserve.{name}")
    assert ours.__name__ == f"gradserve.{name}"
    parent, _, last = f"gradserve.{name}".rpartition(".")
    assert getattr(importlib.import_module(parent), last) is ours
    assert torch_mod is not None


def test_from_imports_that_programs_use():
    import gradserve.backends.cudnn as cudnn
    from gradserve.autograd import Function, Variable, backward, grad  # noqa: F401
    from gradserve.autograd.functional import hessian, jacobian  # noqa: F401
    from gradserve.nn.parameter import Parameter  # noqa: F401
    from gradserve.optim.optimizer import Optimizer  # noqa: F401
    from gradserve.utils.data import DataLoader, Dataset, TensorDataset  # noqa: F401
    cudnn.benchmark = True
    cudnn.deterministic = True
    with cudnn.flags(enabled=False):
        assert cudnn.enabled is False
    assert cudnn.enabled is True
    assert gs.backends.mps.is_available() is False
    assert gs.backends.mps.is_available() == (torch.backends.mps.is_available() and False)


def test_size_is_torch_s(M):
    x = M.zeros(2, 3)
    t = torch.zeros(2, 3)
    for ours, theirs in ((x.shape, t.shape), (x.size(), t.size()), (M.zeros(()).shape,
                                                                      torch.zeros(()).shape)):
        assert isinstance(ours, gs.Size) and isinstance(ours, tuple)
        assert repr(ours) == repr(theirs).replace("torch", "gradserve")
        assert str(ours) == str(theirs).replace("torch", "gradserve")
        assert ours.numel() == theirs.numel() and ours == tuple(theirs)
    assert (1,) + x.shape == gs.Size([1, 2, 3]) and isinstance((1,) + x.shape, gs.Size)
    assert isinstance(x.shape + (4,), gs.Size) and isinstance(x.shape * 2, gs.Size)
    assert (x @ M.ones(3, 4)).shape == (2, 4) and x.size(1) == 3
    assert f"{x.shape}" == "gradserve.Size([2, 3])"
    assert isinstance(x.t().shape, gs.Size) and isinstance(x[0].shape, gs.Size)


def test_size_pickles():
    import pickle

    s = gs.Size([2, 5])
    assert pickle.loads(pickle.dumps(s)) == s and type(pickle.loads(pickle.dumps(s))) is gs.Size



@pytest.mark.parametrize("args", [(), (2, 3), ([1, 2],), ((1, 2),), (np.array([1, 2]),),
                                  ("size",), ([[1.5], [2.5]],)],
                         ids=["empty", "sizes", "list", "tuple", "numpy", "Size", "nested"])
@pytest.mark.parametrize("cls", ["Tensor", "FloatTensor", "DoubleTensor", "LongTensor",
                                 "IntTensor", "BoolTensor", "ByteTensor"])
def test_legacy_constructors(M, cls, args):
    if len(args) == 1 and isinstance(args[0], str):
        args = (torch.Size([2, 1]),)
        ours_args = (gs.Size([2, 1]),)
    else:
        ours_args = args
    theirs = getattr(torch, cls)(*args)
    ours = getattr(M, cls)(*ours_args)
    assert ours.shape == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch", "gradserve")
    if args and not isinstance(args[0], (int, torch.Size)):
        assert ours.tolist() == theirs.tolist()
    if M.current_session() is not None:
        assert ours.session is M.current_session()


@pytest.mark.parametrize("arg", [3.5, "a", True])
def test_legacy_constructor_errors(arg):
    with pytest.raises(TypeError) as theirs:
        torch.Tensor(arg)
    with pytest.raises(TypeError) as ours:
        gs.Tensor(arg)
    assert str(ours.value) == str(theirs.value)


def test_typed_tensor_from_a_tensor(M):
    t = M.ones(2)
    alias = M.Tensor(t)
    assert alias is not t and alias.dtype == t.dtype
    long = M.LongTensor(M.tensor([1, 2]))
    assert long.tolist() == [1, 2]
    with pytest.raises(TypeError) as theirs:
        torch.LongTensor(torch.ones(2))
    with pytest.raises(TypeError) as ours:
        M.LongTensor(t)
    assert str(ours.value) == str(theirs.value)


def test_isinstance_checks_kind_and_dtype(M):
    assert isinstance(M.ones(2), M.Tensor) and isinstance(M.ones(2), M.FloatTensor)
    assert not isinstance(M.ones(2), M.DoubleTensor)
    assert isinstance(M.ones(2, dtype=M.int64), M.LongTensor)
    assert not isinstance(np.ones(2), M.Tensor)
    assert issubclass(type(M.ones(2)), M.Tensor)
    assert M.Tensor.add(M.ones(1), M.ones(1)).item() == 2.0  # unbound methods, as torch's


def test_variable_is_a_detached_leaf(M):
    w = M.ones(2, requires_grad=True)
    for requires_grad in (False, True):
        v = M.autograd.Variable(w, requires_grad=requires_grad)
        tv = torch.autograd.Variable(torch.ones(2, requires_grad=True),
                                     requires_grad=requires_grad)
        assert (v.requires_grad, v.is_leaf) == (tv.requires_grad, tv.is_leaf)
    v = M.autograd.Variable(M.ones(2))
    assert isinstance(v, M.autograd.Variable) and isinstance(M.ones(1), M.autograd.Variable)
    y = (M.autograd.Variable(M.tensor([3.0]), requires_grad=True) ** 2).sum()
    (g,) = M.autograd.grad(y, y.grad_fn.next_functions[0][0].next_functions[0][0].variable)
    assert g.tolist() == [6.0]
    with pytest.raises(TypeError, match="Variable data has to be a tensor, but got list"):
        M.autograd.Variable([1.0])


def test_parameter_repr_and_isinstance(M):
    p = nn.Parameter(M.ones(2))
    theirs = repr(torch.nn.Parameter(torch.ones(2))).replace("torch", "gradserve")
    assert repr(p).replace(f", device='{p.device}'", "") == theirs
    assert isinstance(p, nn.Parameter) and not isinstance(M.ones(2), nn.Parameter)
    assert isinstance(p, M.Tensor) and type(p).__name__ == "Parameter"
    lin = nn.Linear(2, 1)
    assert isinstance(lin.weight, nn.Parameter)
    assert repr(lin.weight).startswith("Parameter containing:\ntensor(")
    assert not isinstance(lin(M.ones(1, 2)), nn.Parameter)  # results are plain tensors
    assert isinstance(lin.double().weight, nn.Parameter)
    frozen = nn.Parameter(M.ones(2), requires_grad=False)
    m = nn.Module()
    m.scale = frozen  # a Parameter registers even when it does not require grad (torch)
    assert [n for n, _ in m.named_parameters()] == ["scale"]


def test_module_apply_visits_children_first_as_torch():
    def build(mod):
        return mod.Sequential(mod.Linear(2, 2), mod.Sequential(mod.ReLU(), mod.Tanh()),
                              mod.Linear(2, 1))

    seen, tseen = [], []
    build(nn).apply(lambda m: seen.append(type(m).__name__))
    build(torch.nn).apply(lambda m: tseen.append(type(m).__name__))
    assert seen == tseen


def test_default_dtype(M):
    assert M.get_default_dtype() is M.float32
    with pytest.raises(TypeError) as theirs:
        torch.set_default_dtype(torch.int64)
    with pytest.raises(TypeError) as ours:
        M.set_default_dtype(M.int64)
    assert str(ours.value) == str(theirs.value)
    M.set_default_dtype(M.float64)
    torch.set_default_dtype(torch.float64)
    try:
        made = [lambda m: m.tensor([1.5]), lambda m: m.zeros(1), lambda m: m.arange(0., 1.),
                lambda m: m.Tensor([1]), lambda m: m.FloatTensor([1]),
                lambda m: m.full((1,), 2.0), lambda m: m.linspace(0, 1, 2),
                lambda m: m.tensor([1, 2]) * 0.5]
        for make in made:
            assert str(make(M).dtype) == str(make(torch).dtype).replace("torch", "gradserve")
        assert M.get_default_dtype() is M.float64
        assert nn.Linear(2, 2).weight.dtype is M.float64
    finally:
        M.set_default_dtype(M.float32)
        torch.set_default_dtype(torch.float32)
    assert M.zeros(1).dtype is M.float32


def test_default_device(M):
    assert str(M.get_default_device()) == "cpu"
    M.set_default_device("cpu")
    try:
        assert M.zeros(2).device == "cpu" and str(M.get_default_device()) == "cpu"
    finally:
        M.set_default_device(None)


def test_cuda_module(M):
    assert M.cuda.is_available() == (M.cuda.device_count() > 0)
    M.cuda.manual_seed(0)
    M.cuda.manual_seed_all(0)
    M.cuda.synchronize()
    M.cuda.empty_cache()


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 7, 10])
def test_linspace_matches_torch_for_any_number_of_steps(M, steps):
    np.testing.assert_allclose(M.linspace(-0.5, 0.5, steps).tolist(),
                               torch.linspace(-0.5, 0.5, steps).tolist(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence_matches_torch(M, batch_first, side):
    from gradserve.nn.utils.rnn import pad_sequence

    arrays = [np.arange(6.0).reshape(3, 2), np.ones((1, 2)), np.full((2, 2), 7.0)]
    ours = [M.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in arrays]
    out = pad_sequence(ours, batch_first=batch_first, padding_value=-1.0, padding_side=side)
    tout = torch.nn.utils.rnn.pad_sequence(theirs, batch_first=batch_first, padding_value=-1.0,
                                           padding_side=side)
    assert out.shape == tuple(tout.shape) and out.tolist() == tout.tolist()
    w = np.arange(np.prod(tout.shape), dtype=np.float32).reshape(tuple(tout.shape))
    (out * M.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        assert a.grad.tolist() == b.grad.tolist()


def test_parameters_to_vector_and_back(M):
    from gradserve.nn.utils import parameters_to_vector, vector_to_parameters

    lin, tlin = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    lin.load_state_dict({k: v.detach().numpy() for k, v in tlin.state_dict().items()})
    vec = parameters_to_vector(lin.parameters())
    np.testing.assert_allclose(vec.tolist(), torch.nn.utils.parameters_to_vector(
        tlin.parameters()).tolist(), rtol=1e-6)
    vector_to_parameters(vec * 0 + 1, lin.parameters())
    assert lin.weight.tolist() == [[1.0] * 3] * 2 and lin.bias.tolist() == [1.0, 1.0]
    assert lin.weight.is_leaf and lin.weight.requires_grad
