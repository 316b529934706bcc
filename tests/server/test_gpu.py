"""GPU sessions on a real server: placement, moves, memory accounting and its limits, and
what a server does when asked for a GPU it lacks.

Without a GPU these run on the seam's test double (tests/conftest.py); on a machine with one
(benchmarks/gpu_check.sh) on the real devices.
"""

from __future__ import annotations

import os
import re
import urllib.request

import gradserve as gs
import numpy as np
import pytest
from gradserve import engine
from gradserve.engine.core.backend import backend

MiB = 1 << 20


@pytest.fixture
def gpus() -> list[str]:
    count = engine.cuda_device_count()
    if count == 0:
        pytest.skip("no CUDA device (GRADSERVE_FAKE_CUDA=0 and no GPU)")
    return [f"cuda:{i}" for i in range(min(count, 2))]


def test_gpu_session_trains_moves_and_describes_its_memory(make_server, gpus):
    server, address = make_server(devices=["cpu", *gpus], metrics_port=0)
    device = gpus[-1]
    with gs.connect(address) as client, client.session(device=device) as s:
        assert s.device == device
        w = s.randn(64, 32, requires_grad=True)
        x = s.tensor(np.ones((8, 64), np.float32))
        host = (x @ w).relu().cpu()  # the graph crosses to the host and back
        loss = (host.to(device) * 2.0).sum()
        loss.backward()
        assert host.device == "cpu" and w.grad.device == device
        expected = 2.0 * (np.ones((8, 64)) @ w.detach().cpu().numpy() > 0).sum(0)
        np.testing.assert_allclose(w.grad.cpu().numpy(),
                                   np.broadcast_to(expected, (64, 32)) * 1.0, rtol=1e-6)
        info = s.info()
        held = info["bytes_by_device"]
        assert held[device] >= 2 * 64 * 32 * 4 + 8 * 64 * 4 and info["bytes"] == sum(
            held.values())
        assert info["device_memory_used"] >= held[device]
        assert info["device_memory_pool"] >= info["device_memory_used"]
        used, pool = backend(device).memory()
        assert pool >= used >= held[device]
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    from prometheus_client.parser import text_string_to_metric_families

    got = {(s.name, tuple(s.labels.items())): s.value
           for family in text_string_to_metric_families(text) for s in family.samples}
    for name in ("gradserve_device_memory_used_bytes", "gradserve_device_memory_pool_bytes",
                 "gradserve_device_session_bytes"):
        assert got[name, (("device", device),)] >= 0, name
    assert got["gradserve_device_session_bytes", (("device", device),)] == held[device]
    assert ("gradserve_device_memory_used_bytes", (("device", "cpu"),)) not in got


def test_gpu_bytes_count_against_the_session_limit(make_server, gpus):
    _, address = make_server(devices=["cpu", *gpus], max_session_bytes=MiB)
    with gs.connect(address) as client, client.session(device=gpus[0]) as s:
        small = s.ones(1000)
        with pytest.raises(gs.ResourceExhaustedError, match="max-session-bytes"):
            s.zeros(512, 1024).sum().item()  # 2 MiB on the GPU
        host = np.ones((400, 1024), np.float32)  # 1.6 MB uploaded, then moved
        with pytest.raises(gs.ResourceExhaustedError, match="max-session-bytes"):
            s.tensor(host).item()
        assert small.sum().item() == 1000.0  # the session goes on
        held = s.info()["bytes_by_device"]
        assert list(held) == [gpus[0]] and 4000 <= held[gpus[0]] < MiB


def test_out_of_device_memory_fails_one_op_and_everyone_goes_on(make_server, gpus):
    _, address = make_server(devices=["cpu", *gpus])
    device = gpus[0]
    be = backend(device)
    with gs.connect(address) as client, client.session(device=device) as a, \
            client.session(device=device) as b:
        kept = a.ones(10)
        kept.sum().item()
        with be.activate():
            pool = be.xp.get_default_memory_pool()
            pool.set_limit(size=pool.used_bytes() + 8 * MiB)
        try:
            with pytest.raises(gs.ResourceExhaustedError, match="out of memory") as info:
                a.zeros(4096, 1024).sum().item()  # 16 MiB
            assert info.value.op == "zeros"
            assert (kept * 2).sum().item() == 20.0
            assert b.ones(3).sum().item() == 3.0
        finally:
            with be.activate():
                pool.set_limit(size=0)


def test_a_gpu_the_server_lacks_is_failed_precondition(make_server, gpus):
    _, address = make_server(devices=["cpu", gpus[0]])
    absent = "cuda:7"
    with gs.connect(address) as client:
        with pytest.raises(gs.DeviceUnavailableError,
                           match=re.escape(f"device {absent} is not served here (devices: cpu, "
                                           f"{gpus[0]})")) as info:
            client.session(device=absent)
        assert info.value.code == 9  # FAILED_PRECONDITION
        with client.session() as s:
            moved = s.ones(2).to(absent)
            with pytest.raises(gs.DeviceUnavailableError, match="not served here"):
                moved.sum().item()
            assert s.ones(2).cuda().sum().item() == 2.0  # the session and server go on
        with client.session(device=gpus[0]) as other:
            assert other.ones(3).sum().item() == 3.0


def test_serve_devices_auto_lists_the_gpus(server_process, gpus, monkeypatch):
    proc = server_process("--port", "0", "--devices", "auto")
    assert proc.devices == ", ".join(gpus) or "cpu"
    with gs.connect(proc.address) as client, client.session(device="cuda") as s:
        assert s.device == "cuda:0"
        x = s.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        loss = (x * s.tensor(2.0) + 3.0).mean()
        loss.backward()
        assert loss.item() == 8.0 and x.grad.cpu().tolist() == [[0.5, 0.5], [0.5, 0.5]]
    if os.environ.get("GRADSERVE_FAKE_CUDA", "0") not in ("", "0"):  # tests/conftest.py
        assert any("test double" in line for line in proc.stderr_lines)


def test_module_to_gpu_trains_as_on_the_cpu(make_server, gpus):
    # in-process and remote alike: module.to(gpu) moves parameters (new leaves there), and a
    # training step gives the CPU's numbers
    nn, F = gs.nn, gs.nn.functional
    _, address = make_server(devices=["cpu", *gpus])
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])

    def step(where, device):
        where.manual_seed(3)  # engine.manual_seed or the session's
        model = nn.Sequential(nn.Linear(4, 8, session=where), nn.Tanh(),
                              nn.Linear(8, 3, session=where)).to(device)
        assert {p.device for p in model.parameters()} == {device}
        opt = gs.optim.SGD(model.parameters(), lr=0.5)
        tensor = engine.tensor if where is engine else where.tensor
        loss = F.cross_entropy(model(tensor(x).to(device)), tensor(y).to(device))
        loss.backward()
        opt.step()
        assert all(p.grad.device == device for p in model.parameters())
        return [p.detach().cpu().numpy() for p in model.cpu().parameters()]

    with gs.connect(address) as client, client.session() as s:
        for where in (engine, s):
            on_cpu, on_gpu = step(where, "cpu"), step(where, gpus[-1])
            for a, b in zip(on_cpu, on_gpu, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
