"""One suite, two backends: the `ns` fixture gives a test the same names over either.

"engine" is the in-process `gradserve.engine`; "remote" is a live Session on a real gradserve
server in this process (one server and client per test module, a fresh session per test). A
test written against `ns` runs unchanged on both, which is the point: every semantics rule
holds remotely exactly as it does in-process. "remote-cuda" runs it once more on a session
on a GPU (cuda:1 where there are two, so that work done without making the tensor's device
current shows): the seam's test double in CI (tests/conftest.py), the real GPU under
`benchmarks/gpu_check.sh`. `ns.device` is where the namespace's factories put tensors.

Remote errors the client detects (shapes, dtypes, a leaf in-place) are raised at once; those
only the server can see are raised at the next call that waits (`backward`, `item`, `numpy`,
`tolist`, `ns.sync()`), so an expectation that wraps such a call holds for both.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradserve as gs
import pytest
from gradserve import engine

# Factories: the engine module's functions, or the remote Session's methods of the same name.
FACTORIES = (
    "tensor", "from_numpy", "zeros", "ones", "empty", "full", "randn", "rand", "arange", "eye",
    "zeros_like", "ones_like", "randn_like", "rand_like", "full_like", "manual_seed",
)
# Module-level names: the engine's, which `gradserve` re-exports (the very same objects).
MODULE = (
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "cat", "stack", "where",
    "matmul", "float32", "float64", "int64", "bool", "DType", "GradserveError", "AutogradError",
    "InvalidArgumentError", "TensorIndexError",
)


def engine_namespace() -> SimpleNamespace:
    names = {name: getattr(engine, name) for name in FACTORIES + MODULE}
    return SimpleNamespace(**names, kind="engine", autograd=engine.autograd,
                           sync=lambda: None, device="cpu")


def remote_namespace(session) -> SimpleNamespace:
    names = {name: getattr(session, name) for name in FACTORIES}
    names.update({name: getattr(gs, name) for name in MODULE})
    return SimpleNamespace(**names, kind="remote", autograd=gs.autograd,
                           sync=session.synchronize, device=session.device, session=session)


@pytest.fixture(scope="module")
def remote_client():
    from gradserve.server import create_server
    gpus = [f"cuda:{i}" for i in range(engine.cuda_device_count())]
    server, port = create_server("127.0.0.1:0", devices=["cpu", *gpus])  # sessions on cpu
    server.start()
    client = gs.connect(f"127.0.0.1:{port}")
    yield client
    client.close()
    server.stop(0).wait()


def gpu() -> str | None:
    count = engine.cuda_device_count()
    return None if count == 0 else f"cuda:{min(count, 2) - 1}"


@pytest.fixture(params=["engine", "remote", "remote-cuda"])
def ns(request):
    """The tensor API of one backend: `ns.tensor(...)`, `ns.no_grad()`, `ns.autograd.grad`,
    `ns.AutogradError`, ...; `ns.kind` says which, `ns.sync()` waits for the server."""
    if request.param == "engine":
        yield engine_namespace()
        return
    device = "cpu"
    if request.param == "remote-cuda":
        device = gpu()
        if device is None:
            pytest.skip("no CUDA device (GRADSERVE_FAKE_CUDA=0 and no GPU)")
    with request.getfixturevalue("remote_client").session(device=device) as session:
        yield remote_namespace(session)


@pytest.fixture(params=["engine", "remote", "remote-cuda"])
def M(request):
    """`gradserve` itself, to run torch-shaped code: with no current session (engine
    tensors), or inside a session on the cpu or on a GPU (the fake one in CI) that is current,
    so `gs.tensor(...)` and friends make that session's tensors."""
    if request.param == "engine":
        yield gs
        return
    device = "cpu" if request.param == "remote" else gpu()
    if device is None:
        pytest.skip("no CUDA device (GRADSERVE_FAKE_CUDA=0 and no GPU)")
    with request.getfixturevalue("remote_client").session(device=device) as s:
        yield gs
        assert gs.current_session() is s
