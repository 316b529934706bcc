"""Shared helpers for the nn/optim tests: a numerical gradient checker, a stand-in for
remote tensors that only offers the public tensor API, and a session on a real server."""

from __future__ import annotations

import numpy as np
import pytest
from gradserve import engine
from gradserve.engine import TensorAPI


def numerical_grads(fn, arrays, eps=1e-6):
    """Central differences of the scalar fn(*arrays) with respect to each float64 array."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = fn(*arrays)
            flat[i] = old - eps
            down = fn(*arrays)
            flat[i] = old
            gflat[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def check_grads(fn, *arrays, rtol=1e-5, atol=1e-7):
    """Compare engine backward of fn(*tensors) with central differences, in float64.

    fn takes engine tensors and returns any tensor; a non-scalar result is reduced with fixed
    random weights so every output element contributes.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    weights = {}

    def scalar(out):
        if out.numel() == 1:
            return out.sum()
        if "w" not in weights:
            rng = np.random.default_rng(1)
            weights["w"] = engine.tensor(rng.standard_normal(out.shape), dtype=engine.float64)
        return (out * weights["w"]).sum()

    # dtype is explicit: engine.tensor(float64 array) gives float32 (torch keeps float64)
    leaves = [engine.tensor(a, dtype=engine.float64, requires_grad=True) for a in arrays]
    scalar(fn(*leaves)).backward()

    def value(*xs):
        with engine.no_grad():
            return scalar(fn(*[engine.tensor(x, dtype=engine.float64) for x in xs])).item()

    expected = numerical_grads(value, arrays)
    for i, (leaf, want) in enumerate(zip(leaves, expected, strict=True)):
        assert leaf.grad is not None, f"no gradient reached input {i}"
        np.testing.assert_allclose(leaf.grad.numpy(), want, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")


@pytest.fixture
def gradcheck():
    return check_grads


# -- a remote-like tensor -----------------------------------------------------------------------
class ProxyTensor(TensorAPI):
    """Wraps an engine tensor behind the public tensor API only, like a RemoteTensor.

    Every op goes through `_op`/`_inplace` and is logged on the session; reading values
    (numpy, item) is logged as a fetch, the round trip a remote tensor would pay. Mixing in a
    bare engine tensor raises, so code that leaks engine tensors into a remote graph fails.
    """

    __slots__ = ("_t", "session")

    def __init__(self, t, session):
        self._t = t
        self.session = session

    def _wrap(self, out):
        if isinstance(out, tuple):
            return tuple(ProxyTensor(o, self.session) for o in out)
        return ProxyTensor(out, self.session)

    def _unwrap(self, x):
        if isinstance(x, ProxyTensor):
            if x.session is not self.session:
                raise ValueError("tensors from two sessions mixed")
            return x._t
        if isinstance(x, engine.Tensor):
            raise TypeError("an engine tensor was mixed into a remote computation")
        return x

    def _op(self, name, *inputs, **attrs):
        self.session.ops.append(name)
        return self._wrap(self._t._op(name, *[self._unwrap(x) for x in inputs], **attrs))

    def _inplace(self, name, *others, **attrs):
        self.session.ops.append(name + "_")
        self._t._inplace(name, *[self._unwrap(x) for x in others], **attrs)
        return self

    shape = property(lambda self: self._t.shape)
    dtype = property(lambda self: self._t.dtype)
    device = property(lambda self: self._t.device)
    is_leaf = property(lambda self: self._t.is_leaf)
    grad_fn = property(lambda self: self._t.grad_fn)
    _version = property(lambda self: self._t._version)

    @property
    def requires_grad(self):
        return self._t.requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self._t.requires_grad = value

    def requires_grad_(self, requires_grad=True):
        self._t.requires_grad_(requires_grad)
        return self

    @property
    def grad(self):
        g = self._t.grad
        return None if g is None else ProxyTensor(g, self.session)

    @grad.setter
    def grad(self, value):
        self._t.grad = None if value is None else self._unwrap(value)

    def detach(self):
        self.session.ops.append("detach")
        return ProxyTensor(self._t.detach(), self.session)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        self.session.ops.append("backward")
        self._t.backward(gradient, retain_graph, create_graph, inputs)

    def numpy(self):
        self.session.fetches += 1
        return self._t.numpy().copy()

    def item(self):
        self.session.fetches += 1
        return self._t.item()

    def __repr__(self):
        return f"Proxy{self._t!r}"


class FakeSession:
    """The factory surface of a remote session, making ProxyTensors."""

    tensor_type = ProxyTensor

    def __init__(self):
        self.ops: list[str] = []
        self.fetches = 0
        self.uploads = 0

    def _make(self, name, *args, **kwargs):
        self.ops.append(name)
        return ProxyTensor(getattr(engine, name)(*args, **kwargs), self)

    def tensor(self, data, dtype=None, requires_grad=False):
        self.uploads += 1
        return self._make("tensor", data, dtype=dtype, requires_grad=requires_grad)

    def zeros(self, *shape, dtype=None, requires_grad=False):
        return self._make("zeros", *shape, dtype=dtype, requires_grad=requires_grad)

    def ones(self, *shape, dtype=None, requires_grad=False):
        return self._make("ones", *shape, dtype=dtype, requires_grad=requires_grad)

    def empty(self, *shape, dtype=None, requires_grad=False):
        return self._make("empty", *shape, dtype=dtype, requires_grad=requires_grad)

    def rand(self, *shape, dtype=None, requires_grad=False):
        return self._make("rand", *shape, dtype=dtype, requires_grad=requires_grad)

    def randn(self, *shape, dtype=None, requires_grad=False):
        return self._make("randn", *shape, dtype=dtype, requires_grad=requires_grad)

    def manual_seed(self, seed):
        engine.manual_seed(seed)


@pytest.fixture
def fake_session():
    return FakeSession()


@pytest.fixture(scope="module")
def session():
    """A session on a real server in this process, shared by a test module."""
    import gradserve as gs
    from gradserve.server import create_server
    server, port = create_server("127.0.0.1:0")
    server.start()
    try:
        with gs.connect(f"127.0.0.1:{port}") as client, client.session() as s:
            yield s
    finally:
        server.stop(None)
