"""API.md section 5's rules, on the engine and on a live remote session (the `ns` fixture).

Remotely, `ns`'s session is also the current session (the fixture opens it with `with
client.session() as s:`), so `gs.*` factories and new `gs.nn` modules land on it; with the
engine none is current and they make in-process tensors. What a rule costs in round trips is
checked where the contract names it (`s.stats.waits`).
"""

from __future__ import annotations

import threading

import gradserve as gs
import gradserve.nn as nn
import numpy as np
import pytest
from gradserve import engine


def _home(ns):
    return ns.session if ns.kind == "remote" else engine


def _waits(ns) -> int:
    return ns.session.stats.waits if ns.kind == "remote" else 0


# -- the current session ---------------------------------------------------------------------
def test_module_factories_and_modules_use_the_current_session(ns):
    made = [gs.tensor([1.0]), gs.zeros(2), gs.ones(2), gs.empty(2), gs.full((2,), 3.0),
            gs.rand(2), gs.randn(2), gs.randint(0, 5, (2,)), gs.arange(3), gs.linspace(0, 1, 3),
            gs.eye(2), gs.from_numpy(np.ones(2)), nn.Linear(2, 3).weight,
            nn.Parameter(gs.ones(2))]
    for t in made:
        assert isinstance(t, gs.Tensor)
        assert isinstance(t, type(ns.tensor(0.0)))  # parameters: a subclass (nn.parameter)
        if ns.kind == "remote":
            assert t.session is ns.session
    gs.manual_seed(3)
    a = gs.randn(3).tolist()
    ns.manual_seed(3)
    assert ns.randn(3).tolist() == a  # gs.manual_seed seeded the current session's stream


def test_an_explicit_session_wins_and_engine_names_in_process(ns):
    assert type(gs.zeros(2, session=engine)) is engine.Tensor
    assert isinstance(nn.Linear(2, 2, session=engine).weight, engine.Tensor)
    if ns.kind == "remote":
        assert gs.zeros(2, session=ns.session).session is ns.session


def test_use_nests_restores_and_is_per_thread(ns, request):
    if ns.kind == "engine":
        assert gs.current_session() is None
        return
    s = ns.session
    assert gs.current_session() is s
    client = request.getfixturevalue("remote_client")
    other = client.session()
    try:
        with gs.use(other) as current:
            assert current is other and gs.current_session() is other
            assert gs.ones(1).session is other
            seen = []
            t = threading.Thread(target=lambda: seen.append(gs.current_session()))
            t.start()
            t.join()
            assert seen == [None]  # another thread has no current session
        assert gs.current_session() is s  # the previous one again
        assert not other.closed  # gs.use does not close
        assert gs.ones(1, session=other).sum().item() == 1.0
    finally:
        other.close()


def test_the_with_block_closes_and_unsets(request):
    client = request.getfixturevalue("remote_client")
    with client.session() as s:
        assert gs.current_session() is s
    assert s.closed and gs.current_session() is None
    assert type(gs.zeros(1)) is engine.Tensor


def test_the_factory_surface_is_the_same_everywhere(ns):
    # torch's arguments plus requires_grad= and device= on every factory, each place
    where = _home(ns)
    for f in (where, gs):
        for name, args in [("tensor", ([1.0],)), ("zeros", (2,)), ("ones", ((2,),)),
                           ("empty", (2,)), ("full", ((2,), 1.5)), ("rand", (2,)),
                           ("randn", (2,)), ("arange", (0.0, 2.0)), ("linspace", (0, 1, 3)),
                           ("eye", (2,)), ("from_numpy", (np.ones(2, np.float32),))]:
            t = getattr(f, name)(*args, requires_grad=True, **(
                {} if name == "from_numpy" else {"device": gs.device("cpu")}))
            # from_numpy: in-process, shares the array (cpu); a session copies it to its device
            want = ns.device if name == "from_numpy" and f is not engine else "cpu"
            assert t.requires_grad and t.is_leaf and t.device == want, name
        assert f.randint(0, 3, (2,), device="cpu").dtype is gs.int64
        assert sorted(f.randperm(5).tolist()) == [0, 1, 2, 3, 4]
    like = ns.ones(2, 3, dtype=gs.float64)
    for name in ("zeros_like", "ones_like", "empty_like", "rand_like", "randn_like"):
        t = getattr(gs, name)(like, requires_grad=True)
        assert type(t) is type(like) and t.dtype is gs.float64 and t.shape == (2, 3), name
    assert gs.full_like(like, 7, dtype=gs.int32).tolist() == [[7, 7, 7]] * 2
    assert like.new_zeros(4).shape == (4,) and type(like.new_tensor([1, 2])) is type(like)
    with pytest.raises(ns.AutogradError, match="floating point"):
        gs.zeros(2, dtype=gs.int32, requires_grad=True)


# -- devices, types, formatting -----------------------------------------------------------------
def test_device_objects_are_device_strings(ns):
    x = ns.ones(2, device=gs.device("cpu"))
    d = x.device
    assert d == "cpu" and d.type == "cpu" and d.index is None and repr(d) == "device(type='cpu')"
    assert isinstance(d, gs.device) and str(gs.device("cuda", 1)) == "cuda:1"
    assert x.to(gs.device("cpu")) is x
    assert gs.device("cuda:2").index == 2 and gs.device(0) == "cuda:0"
    assert gs.cuda.is_available() is (gs.cuda.device_count() > 0)
    assert gs.cuda.device_count() == (engine.cuda_device_count() if ns.kind == "engine" else sum(
        1 for dv in ns.session.server_devices if dv.startswith("cuda")))


def test_isinstance_parameter_and_format(ns):
    x = ns.tensor([[1.5]], requires_grad=True)
    assert isinstance(x, gs.Tensor) and isinstance(x * 2, gs.Tensor)
    p = nn.Parameter(x.detach())
    assert p.is_leaf and p.requires_grad and isinstance(p, gs.Tensor)
    assert f"{x * 2:+.2f}" == "+3.00" and format(ns.tensor(2), "03d") == "002"
    assert f"{ns.tensor(0.5)}" == "0.5"  # a 0-dim tensor formats as its value, as torch


# -- dtypes -----------------------------------------------------------------------------------
DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


@pytest.mark.parametrize("name", DTYPES)
def test_from_numpy_and_numpy_keep_the_dtype(ns, name):
    a = np.array([1, 0, 3], dtype=name)
    for t in (ns.from_numpy(a), ns.tensor(a), gs.from_numpy(a)):
        assert t.dtype is getattr(gs, name) and t.dtype.name == name
        back = t.cpu().numpy()
        assert back.dtype == np.dtype(name)
        np.testing.assert_array_equal(back, a)
    assert ns.tensor([1, 2], dtype=name).cpu().numpy().dtype == np.dtype(name)


@pytest.mark.parametrize("bad", [np.complex64, np.uint16, np.uint32, np.uint64, np.longdouble,
                                 object])
def test_numpy_dtypes_gradserve_lacks_raise_naming_them(ns, bad):
    a = np.array([1, 2], dtype=bad)
    for make in (ns.from_numpy, ns.tensor):
        with pytest.raises(TypeError, match=np.dtype(bad).type.__name__):
            make(a)


def test_dtype_names_aliases_and_casts(ns):
    assert (gs.half, gs.float, gs.double, gs.short, gs.int, gs.long) == (
        gs.float16, gs.float32, gs.float64, gs.int16, gs.int32, gs.int64)
    x = ns.tensor([1.7, -2.2])
    for alias, want in [("half", "float16"), ("float", "float32"), ("double", "float64"),
                        ("short", "int16"), ("int", "int32"), ("long", "int64")]:
        assert ns.zeros(1, dtype=alias).dtype.name == want
        assert x.to(alias).dtype.name == want
    assert x.int().tolist() == [1, -2] and x.byte().dtype is gs.uint8
    assert x.half().is_floating_point() and not x.short().is_floating_point()
    assert x.type_as(ns.tensor([1])).dtype is gs.int64
    assert gs.promote_types(gs.uint8, gs.int8) is gs.int16
    assert gs.result_type(ns.tensor([1], dtype=gs.int32), 2.5) is gs.float32


def test_inplace_ops_cast_as_torch_allows(ns):
    a = ns.tensor([1.0, 2.0])
    v = a._version
    assert a.add_(ns.tensor([0.5, 0.5], dtype=gs.float64)) is a  # float64 into float32: fine
    assert a.dtype is gs.float32 and a._version == v + 1 and a.tolist() == [1.5, 2.5]
    i = ns.tensor([1, 2], dtype=gs.int32)
    i.add_(ns.tensor([1, 1]))  # int64 into int32: fine
    assert i.dtype is gs.int32 and i.tolist() == [2, 3]
    with pytest.raises(ns.InvalidArgumentError, match="result type Float can't be cast to the "
                                                      "desired output type Long"):
        ns.tensor([1, 2]).add_(ns.tensor([0.5, 0.5]))
    with pytest.raises(ns.InvalidArgumentError, match="desired output type Bool"):
        ns.tensor([True]).mul_(2)


# -- data-dependent shapes ----------------------------------------------------------------------
def test_data_dependent_shapes_cost_one_round_trip_each(ns):
    x = ns.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]], requires_grad=True)
    mask = x > 0
    cases = [(lambda: x[mask], (3,)), (lambda: mask.nonzero(), (3, 2)),
             (lambda: x.masked_select(mask), (3,)), (lambda: mask.int().unique(), (2,)),
             (lambda: x.repeat_interleave(ns.tensor([2, 0]), dim=0), (2, 3))]
    for make, shape in cases:
        before = _waits(ns)
        out = make()
        assert out.shape == shape  # known at once, without asking again
        assert _waits(ns) - before == (1 if ns.kind == "remote" else 0)
    before = _waits(ns)
    y = x * 1
    y[mask] = 0.0  # assignment's shape is the tensor's own: no wait
    y[ns.tensor([0])] = ns.tensor([9.0, 9.0, 9.0])
    assert _waits(ns) == before
    y.sum().backward()
    assert x.grad.tolist() == [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]
    assert y.tolist() == [[9.0, 9.0, 9.0], [-4.0, 0.0, -6.0]]


# -- hooks and custom Functions: what they cost remotely ---------------------------------------
class _Double(gs.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_callbacks_cost_one_round_trip_per_call(ns):
    x = ns.tensor([1.0, 2.0], requires_grad=True)
    handles = [x.register_hook(lambda g: g + 1) for _ in range(2)]
    y = _Double.apply(_Double.apply(x)).sum()
    before = _waits(ns)
    y.backward()
    assert x.grad.tolist() == [6.0, 6.0]  # ((1 * 2) * 2) + 1 + 1
    # the backward waits once, and each of the 4 calls (2 Functions, 2 hooks) is one more
    assert _waits(ns) - before == (1 + 4 + 1 if ns.kind == "remote" else 0)  # + the tolist
    for h in handles:
        h.remove()
    x.grad = None
    before = _waits(ns)
    (x * 3).sum().backward()  # no hook left: backward no longer waits
    assert _waits(ns) == before


def test_an_exception_in_a_hook_surfaces_at_backward_and_the_session_goes_on(ns):
    x = ns.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        (x * x).sum().backward()
    assert x.grad is None

    class Broken(gs.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, g):
            raise KeyError("no gradient here")

    w = ns.tensor([3.0], requires_grad=True)
    with pytest.raises(KeyError, match="no gradient here"):
        Broken.apply(w).sum().backward()
    assert (w * 2).sum().item() == 6.0  # the session is still usable
    (w * 2).sum().backward()
    assert w.grad.tolist() == [2.0]
