"""The SDK through a real server: API.md §2's example and §3's semantics, remotely."""

from __future__ import annotations

import gc
import pathlib
import threading
import warnings

import gradserve as gs
import numpy as np
import pytest
from gradserve import engine

HERE = pathlib.Path(__file__).name


def _no_warn_grad(t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return t.grad


@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_seed_example(s, input_requires_grad):
    x = s.tensor([[1., 2.], [3., 4.]], requires_grad=input_requires_grad)
    w1 = s.tensor(2.0, requires_grad=True)
    w2 = s.tensor(3.0, requires_grad=True)
    l1 = x * w1
    l2 = l1 + w2
    loss = l2.mean()
    assert (l1.grad_fn.name(), l2.grad_fn.name(), loss.grad_fn.name()) == (
        "MulBackward0", "AddBackward0", "MeanBackward0")
    loss.backward()
    assert w1.grad.item() == 2.5
    assert w2.grad.item() == 1.0
    if input_requires_grad:
        assert x.grad.numpy().tolist() == [[0.5, 0.5], [0.5, 0.5]]
        assert x.grad.numpy().dtype == np.float32
    else:
        assert x.grad is None
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert l1.grad is None
    assert _no_warn_grad(l2) is None and _no_warn_grad(loss) is None
    assert loss.item() == 8.0
    assert repr(loss) == "tensor(8., grad_fn=<MeanBackward0>)"


def _cases():
    return {
        "arith": lambda x, w, b, i: (x * w + 3.0) / (1 + x) - 2 ** x,
        "matmul": lambda x, w, b, i: x @ x @ b,
        "reduce": lambda x, w, b, i: x.sum(1, keepdim=True) + x.var(0) + x.std() + x.prod(),
        "maxdim": lambda x, w, b, i: x.max(1)[0] + x.min(0)[0] + x.max(),
        "softmax": lambda x, w, b, i: x.softmax(1).log_softmax(0),
        "math": lambda x, w, b, i: x.exp().log().sqrt().sin().cos().tanh().sigmoid().relu(),
        "clamp": lambda x, w, b, i: x.clamp(min=1.0, max=2.5) + x.clamp(min=2) + x.abs(),
        "shapes": lambda x, w, b, i: x.reshape(4).view(2, 2).t().T.permute(1, 0).flatten(),
        "index": lambda x, w, b, i: x[0, 1:] + x[i].sum(0) + x[None, ..., 0].squeeze(0),
        "catstack": lambda x, w, b, i: gs.cat([x, x * 2], 1).sum(1) + gs.stack([b, b]).sum(0),
        "where": lambda x, w, b, i: gs.where(x > 2, x, w * 1.0),
        "casts": lambda x, w, b, i: x.double().float() + i.float() + (x > 1).long(),
        "expand": lambda x, w, b, i: w.expand(2, 2) * x,
        "inplace": lambda x, w, b, i: (x * 1).mul_(w).add_(1).clamp_(min=2.0).relu_(),
        "view_inplace": lambda x, w, b, i: _view_inplace(x, w),
    }


def _view_inplace(x, w):
    y = x * 1
    y[0].mul_(w)
    return y


def _leaves(make):
    return (make([[1., 2.], [3., 4.]], requires_grad=True), make(2.0, requires_grad=True),
            make([0.5, -0.5]), make([1, 0]))


@pytest.mark.parametrize("name", sorted(_cases()))
def test_same_values_grads_and_meta_as_engine(s, name):
    fn = _cases()[name]
    lx = _leaves(engine.tensor)
    want = fn(*lx)
    rx = _leaves(s.tensor)
    got = fn(*rx)
    (info,) = s._list([got.id])  # what the server's graph says
    assert tuple(info.shape) == got.shape == want.shape
    assert info.dtype == got.dtype.name == want.dtype.name
    assert info.requires_grad == got.requires_grad == want.requires_grad
    assert info.is_leaf == got.is_leaf == want.is_leaf
    assert info.grad_fn == got.grad_fn.name() == want.grad_fn.name()
    assert info.version == got._version == want._version
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
    (want * want).sum().backward()
    (got * got).sum().backward()
    for lt, rt in zip(lx[:2], rx[:2], strict=True):
        if lt.grad is None:
            assert rt.grad is None
        else:
            np.testing.assert_allclose(rt.grad.numpy(), lt.grad.numpy(), rtol=1e-5)


def test_error_sent_ahead_names_the_op_and_line(s):
    a = s.ones(2)
    bad = a.to("cuda:7")  # the bad op
    c = (bad * 2).sum()
    s._flush()
    with pytest.raises(gs.DeviceUnavailableError) as info:  # an AutogradError (RuntimeError)
        c.item()
    line = next(n for n, text in enumerate(pathlib.Path(__file__).read_text().splitlines(), 1)
                if text.endswith("# the bad op"))
    message = str(info.value)
    assert message.startswith("device cuda:7 is not served here")
    assert f"in op 'to' sent from {HERE}:{line}" in message
    assert info.value.op == "to" and info.value.site == f"{HERE}:{line}"
    assert (a + 1).sum().item() == 4.0  # the session goes on


def test_autograd_errors_are_typed(s):
    x = s.tensor([1., 2.], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(gs.AutogradError, match="backward through the graph a second time"):
        loss.backward()
    y = x * 1
    z = (y * y).sum()
    y.add_(1)
    with pytest.raises(gs.AutogradError, match="is at version 1; expected version 0"):
        z.backward()
    with pytest.raises(RuntimeError):  # torch-style handlers work
        s.tensor([1., 2.]).sum().backward()
    with pytest.raises(gs.TensorIndexError):
        s.tensor([1., 2.])[s.tensor([5])].tolist()


def test_client_and_server_agree_on_strides_and_versions(s):
    a = s.tensor(np.arange(24.0).reshape(2, 3, 4))
    views = [a.permute(2, 0, 1), a.permute(2, 0, 1).reshape(4, 6), a[:, 1:, ::2],
             a[:, 1:, ::2].reshape(-1), a.transpose(0, 2)[1:].flatten(1), a.unsqueeze(2)[0],
             a[..., None].expand(2, 3, 4, 5), a.t() if a.dim() == 2 else a.reshape(6, 4).t()]
    views[3].add_(1)  # a copy: a's version stays
    views[0].mul_(2)  # a view: every alias of a moves one up
    infos = {i.id: i for i in s._list([v.id for v in (a, *views)])}
    for v in (a, *views):
        info = infos[v.id]
        assert tuple(info.shape) == v.shape, v.id
        assert v.stride() == (tuple(info.strides) or v.stride()), v.id
        assert v._version == info.version, v.id


def test_a_training_step_waits_once(s):
    nn, optim = gs.nn, gs.optim
    model = nn.Sequential(nn.Linear(8, 16, session=s), nn.ReLU(), nn.Linear(16, 3, session=s))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = s.randn(4, 8), s.tensor([0, 1, 2, 1])
    for _ in range(3):
        before = s.stats.waits
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        assert s.stats.waits - before == 1  # the value asked for; backward and step are sent


def test_backward_errors_are_raised_at_backward_without_a_wait(s):
    x = s.tensor([1., 2.], requires_grad=True)
    y = x * 1
    z = (y * y).sum()
    y.add_(1)
    before = s.stats.waits
    with pytest.raises(gs.AutogradError, match="is at version 1; expected version 0"):
        z.backward()
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(gs.AutogradError, match="backward through the graph a second time"):
        loss.backward()
    assert s.stats.waits == before
    assert x.grad.tolist() == [2.0, 4.0]


def test_waits_for_a_1000_op_graph(s):
    w = s.randn(8, 8, requires_grad=True)
    b = s.zeros(8, requires_grad=True)
    h = s.ones(4, 8)
    for k in range(1000):
        h = (h @ w + b).tanh() if k % 10 == 0 else h * 0.999 + 0.001
    before = s.stats.waits
    h.sum().backward()
    gw, gb = s.fetch(w, b, grad=True)
    assert s.stats.waits - before <= 3
    assert gw.shape == (8, 8) and gb.shape == (8,) and np.isfinite(gw).all()
    assert s.stats.ops >= 1000


def test_gc_release_keeps_the_session_flat(s):
    w = s.randn(16, 4, requires_grad=True)
    counts = []
    for step in range(200):
        x = s.randn(32, 16)
        loss = ((x @ w).relu() ** 2).mean()
        loss.backward()
        with gs.no_grad():
            w -= 0.01 * w.grad
        w.grad = None
        if step % 50 == 49:
            gc.collect()
            counts.append(s.info()["tensor_count"])
    assert counts[-1] <= counts[0] + 2, counts
    assert counts[-1] < 20


def test_reading_grads_every_step_stays_flat(s):
    w = s.randn(8, requires_grad=True)
    counts = []
    for step in range(100):
        (w * w).sum().backward()  # accumulates: a new grad tensor on the server each step
        g = w.grad
        assert g.shape == (8,)
        if step % 25 == 24:
            gc.collect()
            counts.append(s.info()["tensor_count"])
    assert counts[-1] <= counts[0] + 1 and counts[-1] < 10, counts


def test_large_tensor_round_trip(s):
    rng = np.random.default_rng(0)
    big = rng.standard_normal((2048, 4096), dtype=np.float32)  # 32 MiB
    t = s.from_numpy(big)
    assert s.stats.uploads == 1
    back = (t * 2).numpy()
    assert s.stats.fetch_streams == 1
    np.testing.assert_array_equal(back, big * 2)
    assert s.tensor(big[:4]).numpy().tolist() == big[:4].tolist()  # small: inline


def test_fetch_many_in_one_wait(s):
    xs = [s.full((3,), float(k)) for k in range(10)]
    before = s.stats.waits
    values = s.fetch(*xs)
    assert s.stats.waits == before + 1
    assert [v.tolist() for v in values] == [[float(k)] * 3 for k in range(10)]


def test_attach_from_another_client(server, s):
    x = s.tensor([1., 2.], requires_grad=True)
    (x * 3).sum().backward()
    s.synchronize()
    other = gs.connect(server.address)
    try:
        s2 = other.attach(s.id)
        assert s2.id == s.id and s2.device == "cpu"
        x2 = s2.get(x.id)
        assert x2.requires_grad and x2.is_leaf and x2.grad.tolist() == [3., 3.]
        assert x.id in s2.tensors()
        (x2 * 1).sum().backward()
        s2.synchronize()  # ops are sent ahead: another connection sees them once they ran
        assert x.grad.tolist() == [4., 4.]  # one session, seen from both clients
        assert s.fetch(x, grad=True)[0].tolist() == [4., 4.]
    finally:
        other.close()  # attached sessions are left alive
    assert (x * 1).sum().item() == 3.0


def test_closed_session_is_lost(client):
    s = client.session()
    x = s.ones(2)
    s.close()
    with pytest.raises(gs.SessionLostError):
        x.tolist()
    with pytest.raises(gs.SessionLostError):
        client.attach(s.id)


def test_session_closed_by_someone_else(server, client):
    s = client.session()
    x = s.ones(2)
    with gs.connect(server.address) as other:
        other.attach(s.id).close()
    with pytest.raises(gs.SessionLostError):
        x.sum().item()
    s.close()


def test_unreachable_server():
    import socket
    import time

    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(gs.ConnectionError, match="could not reach"):
            gs.connect(address, timeout=1.0)
        assert time.monotonic() - start < 5


def test_no_grad_is_thread_local_over_the_wire(s):
    x = s.tensor([1., 2.], requires_grad=True)
    entered, built = threading.Event(), threading.Event()
    out = {}

    def worker():
        entered.wait()
        out["y"] = x * 2
        built.set()

    t = threading.Thread(target=worker)
    t.start()
    with gs.no_grad():
        entered.set()
        built.wait()
        z = x * 3
    t.join()
    infos = {i.id: i for i in s._list([out["y"].id, z.id])}
    assert infos[out["y"].id].requires_grad and infos[out["y"].id].grad_fn == "MulBackward0"
    assert not infos[z.id].requires_grad and infos[z.id].grad_fn == ""
    assert out["y"].requires_grad and not z.requires_grad


def test_autograd_grad_and_double_backward(s):
    x = s.tensor(3.0, requires_grad=True)
    (g,) = gs.autograd.grad(x * x, x)
    assert g.item() == 6.0 and not g.requires_grad
    (g,) = gs.autograd.grad(x ** 3, x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    g.backward()
    assert x.grad.item() == 18.0  # d/dx 3x^2
    y = s.tensor(1.0, requires_grad=True)
    gx, gy = gs.autograd.grad(x * 2, [x, y], allow_unused=True)
    assert gx.item() == 2.0 and gy is None
    with pytest.raises(gs.AutogradError, match="not have been used"):
        gs.autograd.grad(x * 2, [x, y])


def test_retain_grad_accumulation_and_reset(s):
    x = s.tensor([1., 2.], requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.sum().backward()
    assert y.grad.tolist() == [1., 1.]
    (x * 2).sum().backward()
    assert x.grad.tolist() == [4., 4.]  # accumulated
    x.grad = None
    assert x.grad is None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2., 4.]
    x.grad.zero_()
    assert x.grad.tolist() == [0., 0.]


def test_detach_and_data(s):
    x = s.tensor([1., 2.], requires_grad=True)
    y = x * 1
    loss = (y * y).sum()
    y.data.mul_(10)  # .data: unseen by autograd, the gradient uses the new values
    loss.backward()
    assert x.grad.tolist() == [20., 40.]
    d = x.detach()
    assert not d.requires_grad and d._version == x._version
    x.data = s.tensor([5., 6., 7.])
    assert x.shape == (3,) and x.detach().tolist() == [5., 6., 7.]


def test_values_and_dtypes(s):
    assert s.tensor(2.5).item() == 2.5
    assert isinstance(s.tensor(3).item(), int)
    assert s.tensor([True, False]).tolist() == [True, False]
    assert s.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert s.eye(2).tolist() == [[1., 0.], [0., 1.]]
    assert s.full((2,), 7).tolist() == [7, 7]
    assert s.full((2,), 1.0).dtype is gs.float32 and s.full((2,), 1.0).tolist() == [1.0, 1.0]
    assert s.ones(2, dtype="float64").numpy().dtype == np.float64
    assert s.from_numpy(np.arange(3, dtype=np.int32)).dtype is gs.int32
    assert float(s.tensor([2.0])) == 2.0
    assert f"{s.tensor(0.123456):.2f}" == "0.12"
    assert repr(s.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(s.tensor([1., 2.], dtype=gs.float64)) == "tensor([1., 2.], dtype=gradserve.float64)"
    with pytest.raises(gs.InvalidArgumentError):
        s.ones(2).item()


def test_sessions_have_their_own_random_streams(client):
    with client.session() as a, client.session() as b:
        a.manual_seed(0)
        b.manual_seed(0)
        ra = a.randn(4).tolist()
        a.randn(4)  # advances a only
        assert b.randn(4).tolist() == ra
        b.manual_seed(0)
        assert b.randn(4).tolist() == ra


def test_remote_training_with_nn_and_optim(s):
    from gradserve import nn, optim
    s.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8, session=s), nn.Tanh(), nn.Linear(8, 1, session=s))
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = s.tensor([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
    y = s.tensor([[0.], [1.], [1.], [0.]])
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss)
    first, last = s.fetch(losses[0].detach(), losses[-1].detach())
    assert last < first


def test_autograd_backward_on_several_roots(s):
    x = s.tensor([1., 2.], requires_grad=True)
    gs.autograd.backward([(x * 2).sum(), (x * x).sum()])
    assert x.grad.tolist() == [4., 6.]
    y = x * 3
    y.backward(s.tensor([1., 0.5]))
    assert x.grad.tolist() == [7., 7.5]
    y2 = x * 1
    y2.backward([2., 2.], inputs=[x])  # a gradient given as a list is uploaded
    assert x.grad.tolist() == [9., 9.5]


@pytest.mark.gpu
def test_gpu_session_on_a_gpu_server():
    if gs.engine.cuda_device_count() == 0:  # the fake's without a GPU: tests/conftest.py
        pytest.skip("no CUDA device")
    from gradserve.server import create_server

    srv, port = create_server("127.0.0.1:0", devices="auto")
    srv.start()
    try:
        with gs.connect(f"127.0.0.1:{port}") as client, client.session("cuda") as s:
            assert s.device == "cuda:0"
            x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
            w = s.tensor(2.0, requires_grad=True)
            loss = (x * w + 3.0).mean()
            loss.backward()
            assert x.device == "cuda:0" and w.grad.item() == 2.5
            with pytest.raises(gs.InvalidArgumentError, match="Use Tensor.cpu"):
                x.detach().numpy()
            assert x.grad.cpu().numpy().tolist() == [[0.5, 0.5], [0.5, 0.5]]
            big = s.randn(4096, 2048)  # 32 MiB through the Fetch stream
            assert big.cpu().numpy().shape == (4096, 2048)
    finally:
        srv.stop(0).wait()
