"""The device seam (engine/core/backend.py) and its test double (tests/fakecuda/cupy).

The first half holds the fake to the rules its docstring lists: if a rule stopped holding,
the CUDA runs of the gradcheck and semantics suites would stop catching what it is for. The
second half checks what the seam does on a GPU (the fake in CI, a real one under
benchmarks/gpu_check.sh): scatter-add per dtype, seeded streams, moves, missing devices and
memory going back to the pool.
"""

from __future__ import annotations

import gc
import importlib.util
import pathlib
import re
import sys
import threading

import numpy as np
import pytest
from gradserve import engine as E
from gradserve.engine.core import backend as _backend
from gradserve.engine.core.backend import backend, scatter_add

FAKE_CUDA = pathlib.Path(__file__).resolve().parents[1] / "fakecuda"  # see tests/conftest.py


@pytest.fixture
def xp(monkeypatch):
    """The fake module with two devices, whatever the machine has."""
    monkeypatch.setenv("GRADSERVE_FAKE_CUDA", "2")
    return _fake_module()


def _fake_module():
    """The test double: the `cupy` the seam uses when the fake is on, else loaded from its
    file under another name (a machine with a real GPU)."""
    loaded = sys.modules.get("cupy")
    if loaded is not None and pathlib.Path(loaded.__file__).parent.parent == FAKE_CUDA:
        return loaded
    if "gradserve_fakecupy" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gradserve_fakecupy",
                                                      FAKE_CUDA / "cupy" / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["gradserve_fakecupy"]


# -- the fake's rules ---------------------------------------------------------------------------
def test_host_and_device_arrays_never_meet(xp):
    d = xp.asarray([1.0, 2.0, 3.0])
    h = np.ones(3)
    assert type(d) is xp.ndarray and not isinstance(d, np.ndarray)
    for mix in (lambda: d + h, lambda: h + d, lambda: xp.where(h > 0, d, 0.0),
                lambda: d.__setitem__(0, h[:1]), lambda: d[np.array([0, 1])]):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            mix()
    for numpy_on_device in (lambda: np.exp(d), lambda: np.concatenate([d]),
                            lambda: np.result_type(d, np.float32), lambda: np.asarray(d)):
        with pytest.raises(TypeError):
            numpy_on_device()
    back = xp.asnumpy(d)
    back[0] = 9.0  # crossings copy
    h2 = np.zeros(2)
    d2 = xp.asarray(h2)
    h2[0] = 5.0
    assert d.tolist() == [1.0, 2.0, 3.0] and d2.tolist() == [0.0, 0.0]
    assert (d + 1.0).tolist() == [2.0, 3.0, 4.0] and float(d[1]) == 2.0


def test_arrays_stay_on_the_device_they_were_made_on(xp):
    with xp.cuda.Device(1):
        d = xp.ones(2)
        with xp.cuda.Device(0):
            with pytest.raises(ValueError, match=r"resides \(1\) is different from the current "
                                                 r"device \(0\)"):
                d * 2
            c = d.copy()  # copies to the current device
        assert c.device.id == 0 and (d * 2).device.id == 1
    assert xp.cuda.runtime.getDevice() == 0
    seen = []
    with xp.cuda.Device(1):
        t = threading.Thread(target=lambda: seen.append(xp.cuda.runtime.getDevice()))
        t.start()
        t.join()
    assert seen == [0]  # the current device is per thread
    with pytest.raises(xp.cuda.runtime.CUDARuntimeError):
        xp.cuda.runtime.setDevice(2)


def test_views_reductions_flags_and_no_random(xp):
    d = xp.arange(6.0).reshape(2, 3)
    assert d.base is not None and d.T.base is d.base and d[0].base is d.base
    s = d.sum()
    assert type(s) is xp.ndarray and s.shape == () and float(s) == 15.0
    assert d.flags.c_contiguous and not hasattr(d.flags, "writeable")
    with pytest.raises(AttributeError, match="session's generator"):
        xp.random  # noqa: B018


def test_scatter_add_takes_cudas_atomic_dtypes_only(xp):
    ok = xp.zeros(3, np.float32)
    xp.add.at(ok, xp.asarray([0, 0, 2]), 1.0)
    assert ok.tolist() == [2.0, 0.0, 1.0]
    with pytest.raises(TypeError, match="scatter_add only supports"):
        xp.add.at(xp.zeros(3, np.int64), xp.asarray([0]), 1)


def test_memory_pool_counts_live_arrays(xp):
    pool = xp.get_default_memory_pool()
    with xp.cuda.Device(1):
        gc.collect()
        base_used = pool.used_bytes()
        d = xp.zeros(1000, np.float64)
        view = d[10:]
        assert pool.used_bytes() == base_used + 8000  # a view adds nothing
        del d, view
        assert pool.used_bytes() == base_used and pool.total_bytes() >= base_used + 8000
        pool.free_all_blocks()
        assert pool.total_bytes() == pool.used_bytes()
        pool.set_limit(size=base_used + 4000)
        try:
            with pytest.raises(xp.cuda.memory.OutOfMemoryError) as info:
                xp.zeros(1000, np.float64)
            assert isinstance(info.value, MemoryError)
        finally:
            pool.set_limit(size=0)


# -- the seam, on this machine's GPU (the fake without one) -----------------------------------
def _gpu() -> str:
    count = E.cuda_device_count()
    if count == 0:
        pytest.skip("no CUDA device (GRADSERVE_FAKE_CUDA=0 and no GPU)")
    return f"cuda:{min(count, 2) - 1}"  # cuda:1 where there are two: it must be made current


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8", "bool",
                                   "float16", "float32", "float64"])
def test_scatter_add_adds_repeated_indices_in_every_dtype(dtype):
    be = backend(_gpu())
    rng = np.random.default_rng(0)
    target = (rng.integers(0, 3, (4, 3)) if dtype != "bool" else rng.random((4, 3)) < 0.3)
    target = target.astype(dtype)
    if dtype == "int64":
        target[0, 0] = np.iinfo(np.int64).max  # wraps around, as numpy's int64 add does
    values = rng.integers(-2, 3, (5, 3)).astype(dtype)
    index = np.array([0, 2, 0, -1, 2])
    want = target.copy()
    np.add.at(want, (index,), values)
    with be.activate():
        got = be.from_host(target)
        scatter_add(be.xp, got, (be.from_host(index),), be.from_host(values))
    np.testing.assert_array_equal(be.to_host(got), want)


def test_a_seeded_stream_is_the_same_on_cpu_and_gpu():
    device = _gpu()
    draws = {}
    for where in ("cpu", device):
        E.manual_seed(7)
        draws[where] = (E.randn(3, 4, device=where), E.rand(5, device=where))
    for a, b in zip(draws["cpu"], draws[device], strict=True):
        assert b.device == device
        np.testing.assert_array_equal(a.numpy(), b.cpu().numpy())
    half = backend(device).draws(np.random.default_rng(0)).standard_normal((3,), np.float16)
    assert half.dtype == np.float16 and not isinstance(half, np.ndarray)


def test_to_moves_data_between_host_and_gpus():
    device = _gpu()
    x = E.tensor([[1.0, 2.0], [3.0, 4.0]])
    g = x.to(device)
    assert g.device == device and not isinstance(g._data, np.ndarray)
    if hasattr(g._data, "device"):
        assert g._data.device.id == int(device[-1])
    other = g.to("cuda:0", E.float64)
    assert other.device == "cuda:0" and other.dtype is E.float64
    assert other._data.device.id == 0
    back = other.cpu()
    assert isinstance(back._data, np.ndarray) and back.tolist() == x.tolist()


def test_an_absent_gpu_is_device_unavailable(monkeypatch):
    count = E.cuda_device_count()
    with pytest.raises(E.DeviceUnavailableError, match="invalid device ordinal"):
        E.zeros(2, device=f"cuda:{count + 5}")
    assert issubclass(E.DeviceUnavailableError, RuntimeError)
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if cupy were not installed
    with pytest.raises(E.DeviceUnavailableError, match=r"gradserve\[cuda12\]"):
        _backend.cuda_module()
    assert _backend.cuda_device_count() == 0


def test_freed_graphs_return_memory_to_the_pool():
    device = _gpu()
    be = backend(device)

    def step():
        w = E.randn(256, 256, device=device, requires_grad=True)
        x = E.randn(64, 256, device=device)
        loss = ((x @ w).relu() @ w).tanh().sum()
        return w, x, loss

    step()[2].backward()  # a real GPU's libraries keep their workspaces from the first use
    gc.collect()
    gc.disable()  # reference counting alone must free them: GPU memory is invisible to gc
    try:
        before = be.memory()[0]
        w, x, loss = step()
        during = be.memory()[0]
        loss.backward()
        del loss
        after_backward = be.memory()[0]
        assert w.grad.device == device
        del w, x
        after = be.memory()[0]
    finally:
        gc.enable()
    leaves = (256 * 256 + 64 * 256) * 4
    assert during > before + leaves  # the saved activations too
    assert after_backward == before + leaves + 256 * 256 * 4  # they are gone; w.grad is not
    assert after == before
    assert be.memory()[1] >= during  # the pool keeps the blocks for reuse


def test_ops_never_ask_which_array_module_they_run_on():
    # What differs between numpy and cupy lives in engine/core/backend.py; an op that branches on
    # the module, or reaches for cupy's own API, works on the fake and breaks on a GPU (or
    # the reverse). New ops get `xp` and the seam's helpers (scatter_add, to_device, ...).
    asks = re.compile(r"\bxp is (not )?np\b|\bnp is (not )?xp\b|\bimport cupyx?\b|"
                      r"\bcupyx?\.\w|\basnumpy\b|\.get\(\)|\.device\.id\b")
    engine_dir = pathlib.Path(E.__file__).parent
    found = [f"{path.name}:{n}: {line.strip()}"
             for path in sorted(engine_dir.glob("_ops_*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if asks.search(line.split("#")[0])]
    assert found == []
