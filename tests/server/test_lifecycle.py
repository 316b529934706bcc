"""Processes, limits and access: the CLI, SIGTERM drain, TTL reaping, session and byte
limits, bearer tokens, TLS, health, metrics and the structured log."""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import numpy as np
import pytest
from gradserve.server import _cli
from gradserve.v1 import gradserve_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

MiB = 1 << 20
SERVICE = "gradserve.v1.GradserveService"


def _health(address: str, service: str = SERVICE) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def _events(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines if line.startswith("{")]


# -- subprocesses ---------------------------------------------------------------------------
def test_python_m_server_runs_the_seed_example(server_process, wire):
    proc = server_process("--port", "0", "--host", "127.0.0.1")
    assert proc.devices == "cpu"
    channel, stub = wire.connect(proc.address)
    with channel:
        sid = wire.run_seed(stub)["session_id"]
        assert _health(proc.address) == health_pb2.HealthCheckResponse.SERVING
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    events = _events(proc.stderr_lines)
    names = [(e["event"], e.get("session")) for e in events]
    assert ("session.created", sid) in names and ("session.closed", sid) in names
    assert all("ts" in e and "level" in e for e in events)


def _console_script() -> list[str]:
    script = shutil.which("gradserve", path=str(pathlib.Path(sys.executable).parent))
    if script is not None:
        return [script, "serve"]
    return [sys.executable, "-c", "import sys; from gradserve.server._cli import main; "
            "sys.exit(main())", "serve"]


def test_sigterm_drains(server_process, wire):
    """SIGTERM: health NOT_SERVING, new calls UNAVAILABLE, the running call finishes, exit 0.

    A Fetch of 16 MiB read one chunk at a time keeps a call running: gRPC flow control holds
    the server's stream until the client reads."""
    proc = server_process(argv=_console_script(),
                          env={"GRADSERVE_PORT": "0", "GRADSERVE_DRAIN_GRACE": "20"})
    channel, stub = wire.connect(proc.address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        n = 16 * MiB

        def upload():
            yield pb.UploadRequest(session_id=sid, id="big",
                                   tensor=pb.TensorData(shape=[n], dtype="bool"))
            for _ in range(n // MiB):
                yield pb.UploadRequest(chunk=b"\x01" * MiB)

        stub.Upload(upload())
        fetch = stub.Fetch(pb.FetchRequest(session_id=sid, ids=["big"],
                                           encoding=pb.ENCODING_RAW))
        got = len(next(fetch).tensor.raw)

        proc.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _health(proc.address) != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline, "health never went NOT_SERVING"
            time.sleep(0.05)
        assert _health(proc.address, "") == health_pb2.HealthCheckResponse.NOT_SERVING
        err = wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest()),
                                grpc.StatusCode.UNAVAILABLE, "draining")
        assert wire.error_detail(err).kind == "UnavailableError"
        assert proc.proc.poll() is None  # still running: the fetch is not done

        got += sum(len(m.tensor.raw) for m in fetch)  # the running call finishes
        assert got == n
    assert proc.wait(timeout=15) == 0
    events = [e["event"] for e in _events(proc.stderr_lines)]
    assert "server.draining" in events and events[-1] == "server.stopped"


def test_cli_errors_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        _cli.main(["serve", "--port", "0", "--devices", "tpu:0"])
    assert info.value.code == 2
    assert "Expected one of cpu, cuda device type" in capsys.readouterr().err
    assert _cli.main([]) == 2
    assert _cli.main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        _cli.main(["serve", "--help"])
    assert info.value.code == 0
    assert "GRADSERVE_SESSION_TTL" in capsys.readouterr().out


def test_version_comes_from_the_package_metadata(capsys):
    import importlib.metadata

    import gradserve

    assert gradserve.__version__ == importlib.metadata.version("gradserve")
    assert _cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"gradserve {gradserve.__version__}\n"
    with pytest.raises(SystemExit) as info:
        _cli.main(["serve", "--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"gradserve {gradserve.__version__}\n"


def test_health_command_for_container_checks(make_server, capsys, monkeypatch):
    server, address = make_server()
    assert _cli.main(["health", "--target", address]) == 0
    assert capsys.readouterr().out == "SERVING\n"
    monkeypatch.setenv("GRADSERVE_PORT", address.rsplit(":", 1)[1])
    assert _cli.main(["health"]) == 0  # the port the container's server was given
    server.health.enter_graceful_shutdown()
    assert _cli.main(["health", "--target", address]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "NOT_SERVING"
    server.stop(0).wait()
    assert _cli.main(["health", "--target", address, "--timeout", "0.5"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_cli_reads_env(monkeypatch):
    monkeypatch.setenv("GRADSERVE_MAX_SESSION_BYTES", "2GiB")
    monkeypatch.setenv("GRADSERVE_SESSION_TTL", "5")
    args = _cli._serve_parser("x").parse_args([])
    assert args.max_session_bytes == 2 << 30 and args.session_ttl == 5.0
    args = _cli._serve_parser("x").parse_args(["--session-ttl", "7"])
    assert args.session_ttl == 7.0  # the flag wins
    assert [_cli.parse_bytes(t) for t in ("0", "1536", "1k", "1.5MiB", "3G")] == [
        0, 1536, 1024, 3 * MiB // 2, 3 << 30]


# -- limits ---------------------------------------------------------------------------------
def test_ttl_reaping(make_server, wire):
    # a TTL 40 calls long, so a stalled machine does not reap the session kept in use
    server, address = make_server(session_ttl=2.0)
    channel, stub = wire.connect(address)
    with channel:
        idle = stub.CreateSession(pb.CreateSessionRequest()).session_id
        busy = stub.CreateSession(pb.CreateSessionRequest()).session_id
        assert stub.DescribeSession(pb.SessionRef(session_id=idle)).ttl_seconds == 2.0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # keep one session in use until the other goes
            stub.ListTensors(pb.SessionRef(session_id=busy))
            if server.runtime.sessions.counts["reaped"]:
                break
            time.sleep(0.05)
        wire.expect_error(lambda: stub.DescribeSession(pb.SessionRef(session_id=idle)),
                          grpc.StatusCode.NOT_FOUND, "reclaimed after its TTL")
        wire.run_seed(stub, busy)
        assert server.runtime.sessions.counts["reaped"] == 1


def test_create_session_adopts_the_proposed_x_session_id(make_server, wire):
    # What lets a proxy that hashes x-session-id place a session where its calls will go.
    _, address = make_server()
    channel, stub = wire.connect(address)
    proposed = "p" * 22

    def create(session_id):
        return stub.CreateSession(pb.CreateSessionRequest(),
                                  metadata=[("x-session-id", session_id)])

    with channel:
        assert create(proposed).session_id == proposed
        wire.run_seed(stub, proposed, metadata=[("x-session-id", proposed)])
        wire.expect_error(lambda: create(proposed), grpc.StatusCode.INVALID_ARGUMENT,
                          "already in use")
        for bad in ("short", "x" * 65, "with space" * 3, "dots.are.not.allowed.here"):
            wire.expect_error(lambda bad=bad: create(bad), grpc.StatusCode.INVALID_ARGUMENT,
                              "22 to 64 characters")
        assert stub.CreateSession(pb.CreateSessionRequest()).session_id != proposed


def test_max_sessions(make_server, wire):
    _, address = make_server(max_sessions=2)
    channel, stub = wire.connect(address)
    with channel:
        a = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.CreateSession(pb.CreateSessionRequest())
        wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest()),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, "max-sessions")
        stub.CloseSession(pb.SessionRef(session_id=a))
        wire.run_seed(stub)


def test_max_session_bytes(make_server, wire):
    _, address = make_server(max_session_bytes=MiB)
    channel, stub = wire.connect(address)
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED

    def raw_tensor(tid, nbytes):
        return wire.op("tensor", outputs=[tid], data=pb.TensorData(
            shape=[nbytes // 4], raw=np.zeros(nbytes // 4, np.float32).tobytes()))

    def bound():
        infos = stub.ListTensors(pb.SessionRef(session_id=sid)).tensors
        return {t.id: t.shape[0] if t.shape else None for t in infos}

    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[raw_tensor("a", 128 << 10)]))
        # an op that would not fit fails before it allocates, naming the op; the ops before
        # it keep their effect, as with any failing op
        batch = [raw_tensor("b", 600 << 10), raw_tensor("c", 600 << 10)]
        wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=batch)),
                          exhausted, "op 1 (tensor)", "max-session-bytes")
        assert set(bound()) == {"a", "b"}
        grow = [wire.op("full", outputs=["c"], attrs={"shape": [MiB // 8], "value": 1.0,
                                                        "__floats__": ["value"]},
                        site="grow.py:2")]
        wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=grow,
                                                               release=["b"])),
                          exhausted, "op 0 (full at grow.py:2)")
        assert set(bound()) == {"a"}  # release ran after the failure
        # a call that ends over the limit: the ids it bound are released, and an id it
        # rebound points at its old tensor again, so the session stays usable
        stub.RunOps(pb.RunOpsRequest(session_id=sid, release=["y"], ops=[
            raw_tensor("x", 400 << 10), wire.op("requires_grad_", ["x"]),
            wire.op("mul", ["x", 2.0], ["y"]), wire.op("sum", ["y"], ["s"])]))
        stub.Backward(pb.BackwardRequest(session_id=sid, tensors=["s"], retain_graph=True))
        wire.expect_error(lambda: stub.Grad(pb.GradRequest(
            session_id=sid, outputs=["s"], inputs=["x"], results=["a"])),
            exhausted, "the 1 id(s) this request bound were released")
        assert bound() == {"a": (128 << 10) // 4, "x": (400 << 10) // 4, "s": None}
        stub.Release(pb.ReleaseRequest(session_id=sid, ids=["x", "s"]))
        huge = [wire.op("zeros", outputs=["z"], attrs={"shape": [1 << 20, 1 << 20],
                                                         "dtype": "float32"})]
        wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=huge)),
                          exhausted, "op 0 (zeros)")

        def upload():
            yield pb.UploadRequest(session_id=sid, id="u",
                                   tensor=pb.TensorData(shape=[2 * MiB], dtype="bool"))

        wire.expect_error(lambda: stub.Upload(upload()), exhausted, "max-session-bytes")
        wire.run_seed(stub, sid)


# -- access ---------------------------------------------------------------------------------
def test_bearer_tokens(make_server, wire, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# who may call\nalice:alice-secret\n\nbare-secret\n")
    _, address = make_server(token_file=tokens)
    alice = (("authorization", "Bearer alice-secret"),)
    other = (("authorization", "bearer bare-secret"),)
    channel, stub = wire.connect(address)
    with channel:
        unauth = grpc.StatusCode.UNAUTHENTICATED
        wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest()), unauth,
                          "wants a bearer token")
        wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest(), metadata=(
            ("authorization", "Bearer wrong"),)), unauth, "unknown bearer token")
        wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest(), metadata=(
            ("authorization", "Basic alice-secret"),)), unauth, "Bearer <token>")
        info = stub.CreateSession(pb.CreateSessionRequest(), metadata=alice)
        assert info.owner == "alice"
        sid = info.session_id
        for call in (lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid), metadata=other),
                     lambda: stub.CloseSession(pb.SessionRef(session_id=sid), metadata=other),
                     lambda: list(stub.Fetch(pb.FetchRequest(session_id=sid), metadata=other))):
            wire.expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "another caller")
        replies = list(stub.Pipeline(iter([pb.PipelineRequest(session_id=sid, seq=1)]),
                                     metadata=other))
        assert replies[0].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Pipeline(iter([pb.PipelineRequest(session_id=sid, seq=1)])))
        assert info.value.code() == unauth
        mine = stub.CreateSession(pb.CreateSessionRequest(), metadata=other)
        assert mine.owner.startswith("token-") and "bare-secret" not in mine.owner
        wire.run_seed(stub, sid, metadata=alice)
        assert _health(address) == health_pb2.HealthCheckResponse.SERVING  # no token needed


def test_tls(make_server, wire, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    _, address = make_server(tls_cert=cert, tls_key=key)
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    channel, stub = wire.connect(address, credentials)
    with channel:
        wire.run_seed(stub)
    plain, plain_stub = wire.connect(address)
    with plain, pytest.raises(grpc.RpcError) as info:
        plain_stub.CreateSession(pb.CreateSessionRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def _samples(text: str) -> dict:
    """Prometheus text -> {(sample name, ((label, value), ...)): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_and_reflection(make_server, wire):
    server, address = make_server(metrics_port=0, max_sessions=2)
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        wire.run_seed(stub, sid)
        wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(
            session_id=sid, ops=[wire.op("nope")])), grpc.StatusCode.INVALID_ARGUMENT)
        stub.CreateSession(pb.CreateSessionRequest())
        wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest()),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, "max-sessions")
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        got = _samples(urllib.request.urlopen(url, timeout=5).read().decode())
    assert got["gradserve_sessions", ()] == 2
    assert got["gradserve_sessions_created_total", ()] == 2
    assert got["gradserve_session_bytes", ()] == 68
    assert got["gradserve_device_session_bytes", (("device", "cpu"),)] == 68
    assert got["gradserve_errors_total", (("code", "INVALID_ARGUMENT"),
                                          ("kind", "InvalidArgumentError"))] == 1
    assert got["gradserve_errors_total", (("code", "RESOURCE_EXHAUSTED"),
                                          ("kind", "ResourceExhaustedError"))] == 1
    assert got["gradserve_rejections_total", (("limit", "max_sessions"),)] == 1
    # run_seed: one op batch (RunOps), one backward, two fetches
    assert got["gradserve_work_seconds_count", (("kind", "op_batch"),)] == 2  # + the "nope"
    assert got["gradserve_work_seconds_count", (("kind", "backward"),)] == 1
    assert got["gradserve_work_seconds_count", (("kind", "fetch"),)] == 2
    assert got["gradserve_instance_info", (("instance", server.runtime.instance),)] == 1
    assert got["process_resident_memory_bytes", ()] > 0  # the library's process collector
    assert got["gradserve_draining", ()] == 0
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        reply = next(refl.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in reply.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


def test_drain_ends_pipeline_streams(make_server, wire):
    server, address = make_server()
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        send, replies = wire.pipe(stub)
        send(pb.PipelineRequest(session_id=sid, seq=1, ops=wire.seed_ops()))
        assert next(replies).seq == 1
        # a request arriving while draining is answered with the error, then the stream ends
        server.runtime.begin_drain()
        send(pb.PipelineRequest(session_id=sid, seq=2))
        reply = next(replies)
        assert reply.seq == 2 and reply.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        with pytest.raises(grpc.RpcError) as info:
            next(replies)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_drain_cancels_idle_pipelines(make_server, wire):
    server, address = make_server()
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        send, replies = wire.pipe(stub)
        send(pb.PipelineRequest(session_id=sid, seq=1))
        assert next(replies).seq == 1
        assert server.drain(grace=5) is True  # an idle stream is not a running call
        with pytest.raises(grpc.RpcError) as info:
            next(replies)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_pipeline_inline_fetch_limit(make_server, wire):
    _, address = make_server(max_message_bytes=2 * MiB)  # 1 MiB left for inline tensors
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        big = wire.op("zeros", outputs=["big"], attrs={"shape": [3 * MiB // 8],
                                                       "dtype": "float32"})
        replies = list(stub.Pipeline(iter([
            pb.PipelineRequest(session_id=sid, seq=1, ops=[big], fetch=pb.FetchRequest(
                ids=["big"], encoding=pb.ENCODING_RAW)),
            pb.PipelineRequest(session_id=sid, seq=2, ops=wire.seed_ops(),
                               fetch=pb.FetchRequest(ids=["loss"])),
        ])))
        assert replies[0].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert "use Fetch" in replies[0].error.message
        assert list(replies[1].fetched[0].tensor.values) == [8.0]
        assert len(wire.fetch(stub, sid, ["big"], raw=True)["big"]) == 3 * MiB // 8
