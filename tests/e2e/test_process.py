"""The SDK against a real server process (`python -m gradserve.server --port 0`), and against
an in-process server that requires bearer tokens."""

from __future__ import annotations

import signal
import subprocess

import gradserve as gs
import pytest
from gradserve.server import create_server


@pytest.fixture
def server_process(serve):
    """(the process, its address): `python -m gradserve.server --port 0` (conftest)."""
    served = serve()
    return served.proc, served.address


def test_seed_example_against_a_server_process(server_process):
    proc, address = server_process
    with gs.connect(address) as client, client.session(device="cpu") as s:
        x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        w1 = s.tensor(2.0, requires_grad=True)
        w2 = s.tensor(3.0, requires_grad=True)
        loss = (x * w1 + w2).mean()
        loss.backward()
        assert w1.grad.item() == 2.5 and w2.grad.item() == 1.0
        assert x.grad.numpy().tolist() == [[0.5, 0.5], [0.5, 0.5]]
        assert loss.grad_fn.name() == "MeanBackward0"
    proc.send_signal(signal.SIGTERM)  # drains, then exits 0
    assert proc.wait(timeout=30) == 0
    with pytest.raises(gs.ConnectionError):
        gs.connect(address, timeout=0.5)


def test_a_server_that_goes_away_raises_connection_error(server_process):
    proc, address = server_process
    client = gs.connect(address)
    s = client.session()
    x = s.ones(2)
    assert x.sum().item() == 2.0
    proc.kill()
    proc.wait(timeout=30)
    with pytest.raises(gs.ConnectionError):
        (x * 2).sum().item()
    client.close()


def test_hooks_and_functions_run_in_the_client_of_a_server_process(server_process):
    """A hook and a custom Function's backward are this process's Python; the server process
    waits for each call (one round trip), and an exception in one surfaces at backward()."""
    _, address = server_process

    class Clip(gs.autograd.Function):
        @staticmethod
        def forward(ctx, x, bound):
            ctx.save_for_backward(x)
            ctx.bound = bound
            return x.clamp(-bound, bound)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            calls.append("backward")
            return g * (x.abs() <= ctx.bound), None

    calls = []
    with gs.connect(address) as client, client.session() as s:
        x = gs.tensor([0.5, -3.0, 1.0], requires_grad=True)
        x.register_hook(lambda g: calls.append(g.tolist()) or g * 10)
        y = (Clip.apply(x * 2, 1.5) ** 2).sum()
        assert y.grad_fn.next_functions[0][0].next_functions[0][0].name() == "ClipBackward"
        before = s.stats.waits
        y.backward()
        # one wait for the backward, one per call (Function, hook), one for the hook's tolist
        assert s.stats.waits - before == 4
        assert calls == ["backward", [4.0, 0.0, 0.0]]  # 2 * clip(2x) * 2 where not clipped
        assert x.grad.tolist() == [40.0, 0.0, 0.0]

        def broken(g):
            raise ValueError("the hook refuses")

        w = gs.tensor([1.0, 2.0], requires_grad=True)
        w.register_hook(broken)
        with pytest.raises(ValueError, match="the hook refuses"):
            (w * w).sum().backward()
        calls.clear()
        with pytest.raises(gs.AutogradError, match="incorrect number of gradients"):
            class Short(Clip):
                @staticmethod
                def backward(ctx, g):
                    return g
            Short.apply(x, 1.0).sum().backward()
        assert (x * 2).sum().item() == -3.0  # the session is still usable
        assert gs.current_session() is s


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "tokens"
    path.write_text("alice:secret-a\nbob:secret-b\n")
    srv, port = create_server("127.0.0.1:0", token_file=str(path))
    srv.start()
    yield f"127.0.0.1:{port}"
    srv.stop(0).wait()


def test_tokens(token_server):
    with pytest.raises(gs.PermissionError):
        gs.connect(token_server).session()
    with pytest.raises(gs.PermissionError):
        gs.connect(token_server, token="wrong").session()
    with gs.connect(token_server, token="secret-a") as alice:
        s = alice.session()
        assert s.info()["owner"] == "alice"
        assert s.tensor([1., 2.]).sum().item() == 3.0
        with gs.connect(token_server, token="secret-b") as bob:
            with pytest.raises(gs.PermissionError):
                bob.attach(s.id)
        with gs.connect(token_server, token="secret-a") as alice_again:
            assert alice_again.attach(s.id).id == s.id


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    srv, port = create_server("127.0.0.1:0", tls_cert=str(cert), tls_key=str(key))
    srv.start()
    yield f"127.0.0.1:{port}", cert.read_bytes()
    srv.stop(0).wait()


def test_tls(tls_server):
    import grpc

    address, cert = tls_server
    creds = grpc.ssl_channel_credentials(root_certificates=cert)
    with gs.connect(address, tls=creds) as client, client.session() as s:
        assert (s.tensor([1., 2.]) * 2).tolist() == [2., 4.]
    with pytest.raises(gs.ConnectionError, match="TLS"):
        gs.connect(address, tls=True, timeout=1.0)  # the system roots don't trust it


def test_session_byte_limit():
    import numpy as np

    srv, port = create_server("127.0.0.1:0", max_session_bytes=1 << 20)
    srv.start()
    try:
        with gs.connect(f"127.0.0.1:{port}") as client, client.session() as s:
            with pytest.raises(gs.ResourceExhaustedError):
                s.from_numpy(np.zeros(1 << 19))  # 4 MiB through Upload
            x = s.zeros(1 << 17)  # 512 KiB
            with pytest.raises(gs.ResourceExhaustedError):
                (x + 1).sum().item()  # another 512 KiB and a bit does not fit
            assert x.sum().item() == 0.0  # the session stays usable
    finally:
        srv.stop(0).wait()
