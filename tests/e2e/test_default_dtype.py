"""`gs.set_default_dtype` reaches a server in another process: promotion with Python floats,
`tensor([1.5])`, the factories and `get_default_dtype` give torch's dtypes in-process and on
a session of a real `python -m gradserve.server` (whose own process default stays float32),
and the setting is the session's: another session keeps its own."""

from __future__ import annotations

import gradserve as gs
import numpy as np
import pytest
import torch  # the oracle

# (what, fn(M)): M is torch or gradserve; each returns one tensor
CASES = {
    "int_times_float": lambda M: M.arange(4) * 0.5,
    "int_div_int": lambda M: M.tensor([1, 2, 3]) / 2,
    "int_plus_float": lambda M: M.tensor([[1, 2], [3, 4]]) + 1.25,
    "int_mean_float": lambda M: (M.arange(5) * 1.5).mean(),
    "tensor_float_list": lambda M: M.tensor([1.5, 2.25]),
    "tensor_float_scalar": lambda M: M.tensor(0.1) * 3,
    "zeros": lambda M: M.zeros(2, 2) + 0.1,
    "ones_like_int_float": lambda M: M.ones_like(M.arange(3), dtype=M.get_default_dtype()),
    "arange_float": lambda M: M.arange(0.0, 1.0, 0.25),
    "linspace": lambda M: M.linspace(0, 1, 5),
    "full_float": lambda M: M.full((2,), 0.3),
    "eye": lambda M: M.eye(2) * 0.1,
    "int_sqrt": lambda M: M.arange(4).sqrt(),
    "bool_times_float": lambda M: M.tensor([True, False]) * 0.7,
    "int_pow_float": lambda M: M.arange(3) ** 0.5,
}


def _value(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.tolist())


def _check_all(expected_dtype: str):
    for name, fn in CASES.items():
        theirs, ours = fn(torch), fn(gs)
        assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1], name
        assert str(ours.dtype).endswith(expected_dtype) or "int" in str(ours.dtype), name
        np.testing.assert_allclose(np.asarray(ours.tolist()), _value(theirs), rtol=0,
                                   atol=0, err_msg=name)


@pytest.fixture
def float64_default():
    before_t, before_g = torch.get_default_dtype(), gs.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    gs.set_default_dtype(gs.float64)
    yield
    torch.set_default_dtype(before_t)
    gs.set_default_dtype(before_g)


def test_in_process(float64_default):
    assert gs.get_default_dtype() is gs.float64
    _check_all("float64")


def test_on_a_server_process(serve, float64_default):
    served = serve()
    with gs.connect(served.address) as client, client.session() as s:
        with gs.use(s):
            assert gs.get_default_dtype() is gs.float64
            _check_all("float64")
            # the client's own view of the graph agrees with what the server made
            y = gs.arange(3) * 0.5
            assert y.dtype is gs.float64 and s.fetch(y)[0].dtype == np.float64


def test_a_change_midway_applies_from_the_next_op(serve):
    served = serve()
    with gs.connect(served.address) as client, client.session() as s, gs.use(s):
        before = gs.get_default_dtype()
        try:
            a = gs.arange(3) * 0.5  # float32 (recorded before the change)
            gs.set_default_dtype(gs.float64)
            b = gs.arange(3) * 0.5  # float64, in the same buffered batch
            gs.set_default_dtype(gs.float32)
            c = gs.arange(3) / 4
        finally:
            gs.set_default_dtype(before)
        got = s.fetch(a, b, c)
        assert [x.dtype for x in got] == [np.float32, np.float64, np.float32]
        assert (a.dtype, b.dtype, c.dtype) == (gs.float32, gs.float64, gs.float32)


def test_each_session_keeps_its_own(serve, float64_default):
    served = serve()
    with gs.connect(served.address) as client, client.session() as s1:
        x = s1.arange(2) * 0.5  # s1 learns float64
        gs.set_default_dtype(gs.float32)
        with client.session() as s2:
            y = s2.arange(2) * 0.5  # s2 never hears of float64
            assert s2.fetch(y)[0].dtype == np.float32
        assert s1.fetch(x)[0].dtype == np.float64
        z = s1.arange(2) * 0.5  # and s1 goes back to float32 when the client does
        assert z.dtype is gs.float32 and s1.fetch(z)[0].dtype == np.float32


def test_the_server_refuses_a_non_floating_default(serve):
    served = serve()
    with gs.connect(served.address) as client, client.session() as s:
        s._send("set_default_dtype", (), (), {"dtype": "int64"})
        with pytest.raises(gs.InvalidArgumentError, match="floating dtype"):
            s.synchronize()


def test_the_setting_moves_with_the_session_in_a_handoff():
    """A session written at drain (`--state-dir`) and restored keeps its default dtype and
    keeps using it: the setting lives with the session's generator."""
    from gradserve import engine
    from gradserve.engine import seam

    gen = engine.Generator(seed=1)
    with engine.using_generator(gen):
        engine.get_op("set_default_dtype").run((), {"dtype": "float64"})
        assert engine.get_default_dtype() is engine.float64
    assert engine.get_default_dtype() is engine.float32  # the process's is untouched
    arrays, meta = seam.pack({"a": engine.arange(3)}, "cpu", gen)
    bound, restored = seam.unpack(arrays, meta, "cpu")
    assert restored.default_dtype is engine.float64
    with engine.using_generator(restored):
        assert (bound["a"] * 0.5).dtype is engine.float64
