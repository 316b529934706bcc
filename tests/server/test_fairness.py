"""One client cannot stall the server: open calls cost no thread, a hook that never answers
holds no compute slot and ends after --callback-timeout, and every budget (bytes with
graphs' saved tensors, work per op and per request, wire sizes, graph size, sessions per
caller) refuses with a clear status, never INTERNAL. SIGTERM drains within the grace however
busy the compute slots are. Short forms; benchmarks/noisy_neighbours.py has the long ones."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
import urllib.request

import grpc
import pytest
from gradserve.v1 import codec
from gradserve.v1 import gradserve_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

MiB = 1 << 20
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def _health(channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=10).status


def _never():
    """A request iterator that sends nothing until the test ends."""
    threading.Event().wait(3600)
    yield b""  # pragma: no cover


def test_idle_streams_and_silent_calls_hold_no_thread(make_server, wire, tmp_path):
    """300 Pipeline streams that send nothing (the sync server froze at 128), and calls that
    never send their message: Health, a new session and its work still answer."""
    server, address = make_server(cpu_workers=1)
    channels = [grpc.insecure_channel(address) for _ in range(6)]
    calls = []
    try:
        for i in range(300):
            pipeline = channels[i % len(channels)].stream_stream(
                "/gradserve.v1.GradserveService/Pipeline")
            calls.append(pipeline(_never()))
            list_ops = channels[i % len(channels)].stream_unary(
                "/gradserve.v1.GradserveService/ListOps")
            if i % 10 == 0:  # a unary call whose message never comes
                calls.append(list_ops.future(_never()))
        channel, stub = wire.connect(address)
        with channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
            wire.run_seed(stub)
        assert server.runtime.scheduler.threads <= 2  # one slot: no thread per call
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()


def test_a_tokenless_call_is_refused_before_its_message(make_server, wire, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:secret\n")
    _, address = make_server(token_file=tokens)
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_unary("/gradserve.v1.GradserveService/ListOps").future(_never())
        with pytest.raises(grpc.RpcError) as info:
            call.result(timeout=10)  # answered without waiting for the message
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert wire.error_detail(info.value).kind == "UnauthenticatedError"


def _hooked(wire, stub, prefix: str = "") -> str:
    """A session whose graph s = sum(x * 2) has a client hook 'h1' on x."""
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        wire.tensor_op("x", [1.0, 2.0], shape=(2,), requires_grad=True),
        wire.op("register_hook", ["x"], attrs={"key": "h1"}),
        wire.op("mul", ["x", 2.0], ["y"]), wire.op("sum", ["y"], ["s"])]))
    return sid


def test_an_unanswered_hook_times_out_and_holds_no_slot(make_server, wire):
    """A hook whose client never answers: with one compute slot, another session's work runs
    while the backward waits; then the backward fails naming the hook and --callback-timeout,
    and the session goes on."""
    _, address = make_server(cpu_workers=1, callback_timeout=3.0)
    channel, stub = wire.connect(address)
    with channel:
        sid = _hooked(wire, stub)
        send, replies = wire.pipe(stub)
        arrived: queue.Queue = queue.Queue()

        def read() -> None:
            try:
                for reply in replies:
                    arrived.put((time.monotonic(), reply))
            except grpc.RpcError:
                pass  # the channel closed at the end

        threading.Thread(target=read, daemon=True).start()
        send(pb.PipelineRequest(session_id=sid, seq=1,
                                backward=pb.BackwardRequest(tensors=["s"])))
        _, callback = arrived.get(timeout=30)
        assert callback.HasField("callback") and callback.callback.key == "h1"
        wire.run_seed(stub)  # the only slot is free while the hook is awaited
        other_done = time.monotonic()
        when, failed = arrived.get(timeout=30)
        assert other_done < when  # the other session did not wait for the timeout
        assert failed.seq == 1 and failed.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "h1" in failed.error.message and "--callback-timeout" in failed.error.message
        send(pb.PipelineRequest(session_id=sid, seq=2, fetch=pb.FetchRequest(ids=["s"])))
        _, fetched = arrived.get(timeout=30)
        assert fetched.seq == 2 and not fetched.HasField("error")
        send(None)


def test_saved_tensors_count_against_the_byte_limit(make_server, wire):
    """x.sin().sin()... releasing each id: the graph keeps every input alive. The chain
    stops at the limit, and DescribeSession's bytes are what the session really holds."""
    n = 64 << 10  # float32: 256 KiB per tensor
    _, address = make_server(max_session_bytes=8 * MiB)
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
            wire.op("rand", outputs=["y0"], attrs={"shape": [n], "dtype": "float32"}),
            wire.op("requires_grad_", ["y0"])]))
        done = 0
        for i in range(1, 64):
            try:
                stub.RunOps(pb.RunOpsRequest(session_id=sid, release=[f"y{i - 1}"] if i > 1
                                             else [], ops=[wire.op("sin", [f"y{i - 1}"],
                                                                   [f"y{i}"])]))
            except grpc.RpcError as e:
                assert e.code() == RESOURCE_EXHAUSTED and "max-session-bytes" in e.details()
                break
            done = i
            # y0 and every sin's output so far (all saved by the next sin), nothing else
            assert stub.DescribeSession(pb.SessionRef(session_id=sid)).bytes == (i + 1) * 4 * n
        else:
            pytest.fail("the chain never reached the limit")
        assert done == 8 * MiB // (4 * n) - 1  # refused at the op that would pass 8 MiB
        stub.CloseSession(pb.SessionRef(session_id=sid))
        wire.run_seed(stub)


def test_a_strided_elementwise_result_counts_against_the_byte_limit(make_server, wire):
    """`x.t() * k` is a fresh array laid out as x.t() (torch's layout), not a view of x: the
    check before the op counts its bytes, as for any other result."""
    n = 256  # float32: 256 KiB per tensor
    _, address = make_server(max_session_bytes=MiB)
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
            wire.op("rand", outputs=["x"], attrs={"shape": [n, n], "dtype": "float32"}),
            wire.op("t", ["x"], ["xt"])]))
        for i in range(1, 4):  # x and three products: 1 MiB
            stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
                wire.op("mul", ["xt", float(i)], [f"y{i}"])]))
        listed = stub.ListTensors(pb.SessionRef(session_id=sid)).tensors
        assert [list(t.strides) for t in listed if t.id == "y1"] == [[1, n]]
        with pytest.raises(grpc.RpcError) as refused:
            stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
                wire.op("mul", ["xt", 4.0], ["y4"])]))
        assert refused.value.code() == RESOURCE_EXHAUSTED
        assert f"mul would make {4 * n * n} bytes" in refused.value.details()
        stub.CloseSession(pb.SessionRef(session_id=sid))


def test_wire_bounds_come_before_parsing(make_server, wire):
    _, address = make_server(max_batch_ops=10)
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        send, replies = wire.pipe(stub)
        deep = b"[" * 100_000 + b"]" * 100_000
        good = codec.pack_ops([["rand", [], ["a"], {"shape": [2], "dtype": "float32"}, 0]])
        # broken after op 0, and larger than what is parsed in one go: read entry by entry,
        # op 0's error comes first (a small batch is parsed whole: see the next test)
        nope = b'[["nope", [], ["b"], null, 0],' + b"{" * 300_000
        for seq, batch, code, text in (
                (1, deep, grpc.StatusCode.INVALID_ARGUMENT, "nests deeper than"),
                (2, nope, grpc.StatusCode.INVALID_ARGUMENT, "unknown op 'nope'"),
                (3, codec.pack_ops([["rand", [], [f"o{i}"], {"shape": [1], "dtype": "float32"}, 0]
                                    for i in range(11)]), RESOURCE_EXHAUSTED, "max-batch-ops"),
                (4, good, grpc.StatusCode.OK, "")):
            send(pb.PipelineRequest(session_id=sid, seq=seq, op_batch=batch))
            reply = next(replies)
            assert reply.seq == seq
            assert reply.error.code == code.value[0], reply.error.message
            assert text in reply.error.message
        send(None)
        wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
            wire.op("neg", ["a"], [f"n{i}"]) for i in range(11)])), RESOURCE_EXHAUSTED,
            "max-batch-ops")


def test_a_small_broken_batch_runs_none_of_its_ops(make_server, wire):
    """An ordinary-sized op_batch is parsed whole before any op runs: malformed JSON after a
    good op is INVALID_ARGUMENT and the good op did not run."""
    _, address = make_server()
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        send, replies = wire.pipe(stub)
        broken = b'[["rand", [], ["a"], {"shape": [2], "dtype": "float32"}, 0], {'
        send(pb.PipelineRequest(session_id=sid, seq=1, op_batch=broken))
        reply = next(replies)
        send(None)
        assert reply.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "not a JSON array of ops" in reply.error.message
        listed = stub.ListTensors(pb.SessionRef(session_id=sid))
        assert [t.id for t in listed.tensors] == []


def test_work_limits_refuse_and_the_session_goes_on(make_server, wire):
    _, address = make_server(max_op_elements=1 << 24, max_graph_nodes=50,
                             max_request_seconds=0.3)
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
            wire.tensor_op("one", [1.0], requires_grad=True)]))
        huge = [wire.op("expand", ["one"], ["e"], attrs={"shape": [1 << 20, 1 << 20]}),
                wire.op("sum", ["e"], ["s"])]
        wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=huge)),
                          RESOURCE_EXHAUSTED, "max-op-elements", "op 1 (sum)")
        chain = [wire.op("mul", ["one" if i == 0 else f"c{i - 1}", 1.0], [f"c{i}"])
                 for i in range(100)]
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=chain))
        wire.expect_error(lambda: stub.DescribeGraph(pb.DescribeGraphRequest(
            session_id=sid, id="c99")), RESOURCE_EXHAUSTED, "max-graph-nodes")
        many = codec.pack_ops([["neg", ["one"], ["m"], None, 0]] * 90_000)
        send, replies = wire.pipe(stub)
        send(pb.PipelineRequest(session_id=sid, seq=1, op_batch=many))
        reply = next(replies)
        assert reply.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert "--max-request-seconds" in reply.error.message
        send(None)
        wire.run_seed(stub, sid)


def test_sessions_per_caller(make_server, wire, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:a-secret\nbob:b-secret\n")
    _, address = make_server(token_file=tokens, max_sessions_per_caller=2)
    alice = (("authorization", "Bearer a-secret"),)
    bob = (("authorization", "Bearer b-secret"),)
    channel, stub = wire.connect(address)
    with channel:
        first = stub.CreateSession(pb.CreateSessionRequest(), metadata=alice).session_id
        stub.CreateSession(pb.CreateSessionRequest(), metadata=alice)
        wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest(),
                                                     metadata=alice),
                          RESOURCE_EXHAUSTED, "max-sessions-per-caller")
        stub.CreateSession(pb.CreateSessionRequest(), metadata=bob)  # bob has his own
        stub.CloseSession(pb.SessionRef(session_id=first), metadata=alice)
        stub.CreateSession(pb.CreateSessionRequest(), metadata=alice)


def test_sigterm_ends_within_the_grace_under_a_busy_op(server_process, wire):
    """An op that would run for minutes (no work limits): SIGTERM still exits soon after
    --drain-grace, abandoning it."""
    proc = server_process("--port", "0", "--drain-grace", "1", "--max-op-elements", "0",
                          "--max-request-seconds", "0", "--metrics-port", "0")
    deadline = time.monotonic() + 20  # the event is logged just after the address line
    while not any('"server.started"' in line for line in proc.stderr_lines) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    started = next(json.loads(line) for line in proc.stderr_lines
                   if '"server.started"' in line)
    metrics = f"http://127.0.0.1:{started['metrics_port']}/metrics"
    channel, stub = wire.connect(proc.address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[wire.tensor_op("one", [1.0])]))
        busy = stub.RunOps.future(pb.RunOpsRequest(session_id=sid, ops=[
            wire.op("expand", ["one"], ["e"], attrs={"shape": [1 << 20, 1 << 20]}),
            wire.op("sum", ["e"], ["s"])]))
        # SIGTERM only once the op holds its slot (else the drain would be clean)
        deadline = time.monotonic() + 20
        while _compute_busy(metrics) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _compute_busy(metrics) >= 1
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        busy.cancel()
    stopped = [json.loads(line) for line in proc.stderr_lines
               if '"server.stopped"' in line]
    assert stopped and stopped[0]["drained"] is False and stopped[0]["abandoned"] >= 1


def _compute_busy(url: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return next(s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "gradserve_compute_busy")


def test_describe_session_counts_grads_and_frees(make_server, wire):
    _, address = make_server()
    channel, stub = wire.connect(address)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
            wire.op("rand", outputs=["w"], attrs={"shape": [1024], "dtype": "float32"}),
            wire.op("requires_grad_", ["w"]), wire.op("sin", ["w"], ["y"]),
            wire.op("sin", ["y"], ["z"]), wire.op("sum", ["z"], ["s"])], release=["y", "z"]))
        before = stub.DescribeSession(pb.SessionRef(session_id=sid)).bytes
        assert before == 4096 + 4096 + 4  # w; y (the second sin saved it); s
        stub.Backward(pb.BackwardRequest(session_id=sid, tensors=["s"]))
        after = stub.DescribeSession(pb.SessionRef(session_id=sid)).bytes
        assert after == 4096 + 4 + 4096  # the graph is gone with y; w's grad counts
        stub.Release(pb.ReleaseRequest(session_id=sid, ids=["w", "s"]))
        assert stub.DescribeSession(pb.SessionRef(session_id=sid)).bytes == 0


def test_sessions_take_turns_one_item_each():
    """One slot, session a queues 5 items, then b queues 1: b's runs after at most one
    more of a's (round-robin at item granularity), and each session's items keep their
    order."""
    from gradserve.server._scheduler import Scheduler

    scheduler = Scheduler(["cpu"], cpu_slots=1)
    gate, ran = threading.Event(), []

    def item(name: str) -> None:
        if name == "a0":
            gate.wait(10)
        ran.append(name)

    futures = [scheduler.submit("cpu", "a", item, f"a{i}") for i in range(5)]
    futures.append(scheduler.submit("cpu", "b", item, "b0"))
    gate.set()
    for future in futures:
        future.result(10)
    assert ran[:3] == ["a0", "b0", "a1"] and ran[3:] == ["a2", "a3", "a4"]
    scheduler.close()


def test_every_serve_option_has_one_default_and_a_readme_row(capsys):
    """`gradserve serve --help` states each option's default once, the README's option table
    lists every option, and `gradserve health --help` states --service's default (issue 16);
    'auto' budgets come out as None (the machine-derived default)."""
    import pathlib
    import re

    from gradserve.server import _cli

    parser = _cli._serve_parser("gradserve serve")
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `--")]
    for action in parser._actions:
        flag = next((f for f in action.option_strings if f.startswith("--")), None)
        if flag in (None, "--help", "--version"):
            continue
        assert len(re.findall("default", action.help)) == 1, action.help
        assert any(f"`{flag}`" in line for line in table), flag
    args = parser.parse_args([])
    assert args.max_server_bytes is None and args.max_session_bytes is None
    assert args.cpu_workers is None and args.max_op_elements is None
    assert parser.parse_args(["--max-server-bytes", "2GiB"]).max_server_bytes == 2 << 30
    with pytest.raises(SystemExit):
        _cli.health(["--help"])
    assert "(default: gradserve.v1.GradserveService)" in " ".join(
        capsys.readouterr().out.split())
