"""The server's layers without a network: conversions, the status table, tokens, sessions."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from gradserve import engine
from gradserve.engine import AutogradError, InvalidArgumentError, TensorIndexError
from gradserve.server import _convert as convert
from gradserve.server import _status
from gradserve.server._auth import ANONYMOUS, TokenTable, identify
from gradserve.server._errors import (
    OpFailure,
    PermissionDeniedError,
    SessionNotFoundError,
    UnauthenticatedError,
)
from gradserve.server._executor import Executor
from gradserve.server._requests import OpSource, Request
from gradserve.server._sessions import SessionManager
from gradserve.v1 import codec
from gradserve.v1 import gradserve_pb2 as pb


def _struct(d: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def test_attrs_from_struct():
    attrs = codec.attrs_from_struct(_struct({
        "dim": [0, 1], "keepdim": True, "value": 2.0, "min": 2.0, "max": 0.5, "none": None,
        "key": [["slice", None, 3, None], ["int", -1]], "dtype": "float64",
        "nested": {"a": 1.0}, "__floats__": ["min"],
    }))
    assert attrs == {"dim": (0, 1), "keepdim": True, "value": 2, "min": 2.0, "max": 0.5,
                     "none": None, "key": (("slice", None, 3, None), ("int", -1)),
                     "dtype": "float64", "nested": {"a": 1}}
    assert type(attrs["value"]) is int and type(attrs["min"]) is float
    floats = codec.attrs_from_struct(_struct({"v": [1.0, 2.5], "__floats__": ["v"]}))
    assert floats == {"v": (1.0, 2.5)} and type(floats["v"][0]) is float
    for bad in (3, [1], "min"):
        with pytest.raises(InvalidArgumentError, match="__floats__"):
            codec.attrs_from_struct(_struct({"__floats__": bad}))


def test_arrays_from_tensor_data():
    a = codec.array_from_tensor_data(pb.TensorData(shape=[2, 2], values=[1, 2, 3, 4]))
    assert a.dtype == np.float32 and a.shape == (2, 2) and a.flags.writeable
    assert codec.array_from_tensor_data(pb.TensorData(values=[5])).shape == ()
    b = codec.array_from_tensor_data(pb.TensorData(shape=[3], dtype="bool",
                                                     raw=bytes([0, 1, 7])))
    assert b.tolist() == [False, True, True]
    i = codec.array_from_tensor_data(pb.TensorData(shape=[2], dtype="int64",
                                                     raw=np.array([-1, 2 ** 40], "<i8").tobytes()))
    assert i.tolist() == [-1, 2 ** 40] and i.flags.writeable
    e = codec.array_from_tensor_data(pb.TensorData(shape=[0, 3]))
    assert e.shape == (0, 3)
    big = codec.array_from_tensor_data(pb.TensorData(dtype="float32", values=[1e300]))
    assert math.isinf(big.item())
    with pytest.raises(InvalidArgumentError, match="no values|0 values given"):
        codec.array_from_tensor_data(pb.TensorData(shape=[2]))
    with pytest.raises(InvalidArgumentError, match="not a valid int64"):
        codec.array_from_tensor_data(pb.TensorData(dtype="int64", values=[2.0 ** 63]))


def test_fetch_chunks():
    arr = np.arange(10, dtype=np.float32)
    raw = list(convert.fetch_chunks("x", arr, pb.ENCODING_RAW, chunk_bytes=16))
    assert [(m.offset, len(m.tensor.raw), m.last) for m in raw] == [(0, 16, False),
                                                                   (16, 16, False),
                                                                   (32, 8, True)]
    assert list(raw[0].tensor.shape) == [10] and not raw[1].tensor.shape
    values = list(convert.fetch_chunks("x", arr, pb.ENCODING_VALUES, chunk_bytes=32))
    assert [m.offset for m in values] == [0, 4, 8]
    assert [v for m in values for v in m.tensor.values] == list(range(10))
    assert list(convert.fetch_chunks("n", None, pb.ENCODING_RAW)) == [
        pb.FetchResponse(id="n", none=True, last=True)]
    whole = pb.FetchResponse()
    convert.fill_whole(whole, "x", arr, pb.ENCODING_RAW)
    assert whole.last and len(whole.tensor.raw) == 40


@pytest.mark.parametrize("enc", [pb.ENCODING_RAW, pb.ENCODING_VALUES])
@pytest.mark.parametrize("array", [np.float32(2.5).reshape(()), np.arange(6.0).reshape(2, 3),
                                   np.zeros((0, 3), np.float32), np.array([True, False]),
                                   np.array([-1, 2 ** 40]), None], ids=str)
def test_fill_whole_builds_the_one_unchunked_message(array, enc):
    (chunked,) = convert.fetch_chunks("t", array, enc, chunk_bytes=None)
    whole = pb.PipelineResponse().fetched.add()  # as the servicer fills a reply
    convert.fill_whole(whole, "t", array, enc)
    assert whole == chunked
    assert whole.SerializeToString() == chunked.SerializeToString()


def test_status_table():
    code = _status.status_code
    assert code(TensorIndexError("i")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(InvalidArgumentError("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(AutogradError("x")) == grpc.StatusCode.FAILED_PRECONDITION
    assert code(SessionNotFoundError("x")) == grpc.StatusCode.NOT_FOUND
    assert code(PermissionDeniedError("x")) == grpc.StatusCode.PERMISSION_DENIED
    assert code(UnauthenticatedError("x")) == grpc.StatusCode.UNAUTHENTICATED
    assert code(MemoryError()) == grpc.StatusCode.RESOURCE_EXHAUSTED
    failure = OpFailure(AutogradError("freed"), 2, "mul", "train.py:12")
    assert code(failure) == grpc.StatusCode.FAILED_PRECONDITION
    err = _status.error_value(failure)
    assert (err.code, err.kind, err.op_index, err.op, err.site) == (
        9, "AutogradError", 2, "mul", "train.py:12")
    assert err.message == "freed"  # where it happened travels in the fields
    internal = _status.error_value(ZeroDivisionError("secret detail"))
    assert internal.code == 13 and "secret" not in internal.message


def test_token_table(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# comment\n\nalice: s3cret \nbare-token\n")
    table = TokenTable.from_file(path)
    assert len(table) == 2
    assert table.owner([("authorization", "Bearer s3cret")]) == "alice"
    assert table.owner([("authorization", "bearer  bare-token ")]).startswith("token-")
    for metadata in ([], [("authorization", "Bearer nope")], [("authorization", "s3cret")]):
        with pytest.raises(UnauthenticatedError):
            table.owner(metadata)
    assert identify([], None) == ANONYMOUS
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no tokens"):
        TokenTable.from_file(path)


def test_sessions_owner_ttl_and_busy():
    now = [0.0]
    manager = SessionManager(ttl=10, max_sessions=None, clock=lambda: now[0])
    a, b = manager.create("alice", "cpu"), manager.create("bob", "cpu")
    assert manager.get(a.id, "alice") is a
    with pytest.raises(PermissionDeniedError):
        manager.get(a.id, "bob")
    now[0] = 11
    with b.lock:  # in use: not idle, whatever the clock says
        assert manager.reap_idle() == [a.id]
    with pytest.raises(SessionNotFoundError, match="reclaimed after its TTL"):
        manager.get(a.id, "alice")
    assert manager.get(b.id, "bob") is b
    assert manager.counts == {"created": 2, "closed": 0, "reaped": 1, "moved": 0, "lost": 0,
                              "restored": 0}


def _ops(*ops) -> list[OpSource]:
    """Ops in the executor's own form: (name, inputs, outputs, attrs, flags)."""
    return [OpSource(ops, lambda op: op, lambda op: (op[0], ""))]


def test_executor_and_byte_accounting():
    manager = SessionManager(ttl=None, max_sessions=None)
    session = manager.create(ANONYMOUS, "cpu")
    ex = Executor(("cpu",))
    data = np.arange(6, dtype=np.float32)

    def run_ops(*ops):
        result = ex.run(session, Request(_ops(*ops)))
        assert result.error is None, result.error
        return result.outputs

    out = run_ops(
        ("tensor", (data,), ("x",), {"requires_grad": True}, 0),
        ("reshape", ("x",), ("v",), {"shape": (2, 3)}, 0),
        ("sum", ("v",), ("s",), {}, 0),
    )
    assert [m.id for m in out] == ["x", "v", "s"] and out[1].shape == (2, 3)
    assert out[1].strides == (3, 1)
    assert session.nbytes == 24 + 4  # the view shares x's storage
    backward = convert.action_request(convert.backward_action(pb.BackwardRequest(tensors=["s"])))
    assert ex.run(session, backward).value() == ["x"]
    assert session.nbytes == 24 + 4 + 24
    with engine.no_grad():  # the executor sets grad mode itself, whatever the thread has
        out = run_ops(("mul", ("x", 2.0), ("y",), {}, 0))
    assert out[0].requires_grad
    out = run_ops(("mul", ("x", 2.0), ("z",), {}, codec.NO_GRAD))
    assert not out[0].requires_grad
    result = ex.run(session, Request(
        _ops(("neg", ("x",), ("n",), {}, 0), ("nope", (), (), {}, 0)), ["y", "never"]))
    assert isinstance(result.error, OpFailure) and result.error.index == 1
    assert "n" in session.tensors and "y" not in session.tensors
    assert result.released == 1
    with pytest.raises(OpFailure):
        result.value()


def test_every_wire_form_lowers_to_the_same_request():
    """OpCalls with Struct attrs (grpcurl) and op_batch entries (the SDK) read as the same
    ops; the Backward call and a Pipeline's then.backward as the same action."""
    calls = [pb.OpCall(op="mul", inputs=[pb.Operand(tensor="x"), pb.Operand(float=2.0)],
                       outputs=["y"], no_grad=True),
             pb.OpCall(op="sum", inputs=[pb.Operand(tensor="y")], outputs=["s"])]
    calls[1].attrs.update({"dim": [0], "keepdim": False})
    batch = codec.pack_ops([["mul", ["x", 2.0], ["y"], None, codec.NO_GRAD],
                            ["sum", ["y"], ["s"], {"dim": [0], "keepdim": False}, 0]])
    by_calls = convert.run_ops_request(pb.RunOpsRequest(ops=calls, release=["t"]))
    by_batch = convert.pipeline_request(pb.PipelineRequest(op_batch=batch, release=["t"]))

    def ops(request):
        return [source.read(e) for source in request.ops for e in source.entries]

    assert ops(by_calls) == ops(by_batch) == [("mul", ("x", 2.0), ("y",), {}, codec.NO_GRAD),
                                              ("sum", ("y",), ("s",),
                                               {"dim": (0,), "keepdim": False}, 0)]
    assert by_calls.release == by_batch.release == ["t"]
    backward = pb.BackwardRequest(tensors=["s"], retain_graph=True)
    unary = convert.action_request(convert.backward_action(backward))
    piped = convert.pipeline_request(pb.PipelineRequest(backward=backward))
    assert unary.then == piped.then == convert.backward_action(backward)
    assert not unary.ops and not piped.ops and not unary.release and not piped.release
    with pytest.raises(InvalidArgumentError, match="no backward of this session waits"):
        convert.pipeline_request(pb.PipelineRequest(callback_result=pb.CallbackResult(key="k")))
    answer = convert.pipeline_request(
        pb.PipelineRequest(callback_result=pb.CallbackResult(key="k")), answering=True)
    assert answer.then is None


def test_op_batches_read_like_op_calls():
    data = [pb.TensorData(shape=[2], raw=np.array([1, 2], "<f4").tobytes())]
    raw = codec.pack_ops([["tensor", [{"d": 0}], ["x"], {"requires_grad": True}, 0],
                          ["clamp", ["x"], ["y"], {"min": 1.0, "max": None}, codec.NO_GRAD],
                          ["add", ["x", 2, 0.5, True], [], None, codec.INPLACE]])
    req = pb.PipelineRequest(op_batch=raw, op_data=data)
    (source,) = convert.op_sources(req)
    ops = [source.read(e) for e in source.entries]
    assert ops[0][0] == "tensor" and ops[0][1][0].tolist() == [1.0, 2.0]
    assert ops[1] == ("clamp", ("x",), ("y",), {"min": 1.0, "max": None}, codec.NO_GRAD)
    assert type(ops[1][3]["min"]) is float
    assert [type(x) for x in ops[2][1]] == [str, int, float, bool]
    for bad, match in (
        (["add"], "entry is"),
        (["add", "x", [], None, 0], "entry is"),
        (["add", [{"d": 0}], ["y"], None, 0], "only 'tensor' takes data"),
        (["tensor", [{"d": 5}], ["y"], None, 0], "op_data"),
        (["add", [[1]], ["y"], None, 0], "input 0"),
        (["add", [2 ** 70], ["y"], None, 0], "Overflow"),
        (["add", [], [""], None, 0], "non-empty"),
    ):
        (source,) = convert.op_sources(pb.PipelineRequest(op_batch=codec.pack_ops([bad]),
                                                          op_data=data))
        with pytest.raises(InvalidArgumentError, match=match):
            source.read(next(iter(source.entries)))
    for garbage in (b"{", b"{}", b"\xff"):
        with pytest.raises(InvalidArgumentError, match="op_batch"):
            convert.op_sources(pb.PipelineRequest(op_batch=garbage))


def test_devices_auto_means_every_gpu_else_cpu(monkeypatch):
    from gradserve import engine
    from gradserve.server import _server

    monkeypatch.setattr(engine, "cuda_device_count", lambda: 0)
    assert _server.resolve_devices("auto") == ("cpu",)
    assert _server.resolve_devices("cpu,auto") == ("cpu",)
    with pytest.raises(engine.InvalidArgumentError):
        _server.resolve_devices("tpu")


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16384, 1 << 20])
def test_upload_chunks_are_read_in_place_and_match_protobuf(size):
    from gradserve.v1 import gradserve_pb2 as pb

    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    header = pb.UploadRequest(session_id="s", id="t").SerializeToString()
    framed = pb.UploadRequest(chunk=payload).SerializeToString()
    first, chunks = convert.upload_messages(iter([header, framed]))
    assert first.session_id == "s" and first.id == "t"
    (chunk,) = list(chunks)
    assert bytes(chunk) == payload
    assert isinstance(chunk, memoryview) or size == 0


def test_upload_chunk_messages_with_other_fields_or_garbage():
    from gradserve.v1 import gradserve_pb2 as pb

    extra = pb.UploadRequest(chunk=b"abc", id="ignored").SerializeToString()
    _, chunks = convert.upload_messages(iter([b"", extra]))
    assert bytes(next(chunks)) == b"abc"
    _, chunks = convert.upload_messages(iter([b"", b"\x2a\x05ab"]))  # length past the end
    with pytest.raises(InvalidArgumentError, match="malformed UploadRequest"):
        next(chunks)
    with pytest.raises(InvalidArgumentError, match="malformed UploadRequest"):
        convert.upload_messages(iter([b"\xff\xff\xff"]))


@pytest.mark.parametrize("enc", ["ENCODING_RAW", "ENCODING_VALUES"])
@pytest.mark.parametrize("shape", [(0,), (3,), (5, 7), (300_000,)])
def test_fetch_frames_parse_as_the_messages_fetch_chunks_builds(enc, shape):
    from gradserve.v1 import gradserve_pb2 as pb

    array = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    code = getattr(pb, enc)
    frames = [pb.FetchResponse.FromString(f) for f in convert.fetch_frames("t", array, code)]
    assert frames == list(convert.fetch_chunks("t", array, code))
    none = [pb.FetchResponse.FromString(f) for f in convert.fetch_frames("g", None, code)]
    assert none == [pb.FetchResponse(id="g", none=True, last=True)]


def test_cancelled_and_undecodable_streams_leave_no_reference_cycles(make_server, wire):
    """`gradserve serve` runs the cyclic collector rarely (server/_cli.py), so a handler
    must not leave a cycle per call: RSS grew ~30 KB per cancelled stream and ~5 KB per
    undecodable Pipeline message before this was fixed (benchmarks/soak.py found it)."""
    import gc
    import os
    import sys
    import time
    import types

    import gradserve.server

    _, address = make_server()
    channel, stub = wire.connect(address)

    def in_handler() -> bool:
        return any(f.f_code.co_name == "Pipeline" and f.f_code.co_filename.endswith(
            "_servicer.py") for top in sys._current_frames().values()
            for f in _stack(top))

    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(5):
                call = channel.stream_stream("/gradserve.v1.GradserveService/Pipeline")(
                    iter([b"\xff\xff\xff\xff\x0f"]))
                with pytest.raises(grpc.RpcError):
                    list(call)
                send, replies = wire.pipe(stub)
                send(pb.PipelineRequest(session_id=sid, seq=1))
                assert next(replies).seq == 1
                replies.cancel()  # while the handler waits for the next request
            deadline = time.monotonic() + 10
            while in_handler():  # the cancels reach the handlers asynchronously
                assert time.monotonic() < deadline, "a Pipeline handler never ended"
                time.sleep(0.01)
            gc.collect()
            here = os.path.dirname(gradserve.server.__file__) + os.sep  # not a venv's path
            ours = [o for o in gc.garbage if isinstance(o, types.FrameType)
                    and o.f_code.co_filename.startswith(here)]
            assert ours == []
        finally:
            gc.set_debug(0)
            gc.garbage.clear()


def _stack(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


def test_freed_arrays_are_settled_before_a_count_is_read_or_a_limit_refuses():
    """A freed array is subtracted lazily (its weakref callback only queues it, _limits
    Ledger), so every count that is read, and every limit check that would refuse, sees the
    exact bytes; an address a freed array had is counted again for the next array there."""
    from types import SimpleNamespace

    from gradserve.server._errors import ResourceExhaustedError
    from gradserve.server._limits import Account, Budget, Ledger, check_limit

    ledger = Ledger(limit=100)
    account = Account(ledger)
    session = SimpleNamespace(account=account, id="s", tensors={})
    a = np.zeros(20, np.float32)  # 80 bytes
    account.track(a, "cpu")
    assert account.held_bytes() == 80 and account.held() == {"cpu": 80}
    del a
    Budget(session, 100).take(80, "an op")  # fits once the free is settled: no error
    check_limit(session, 60, {"x": None})  # not over once settled: nothing undone
    assert account.held_bytes() == 0 and account.held() == {} and ledger.total == 0
    for _ in range(50):  # freed and made again: the address comes back, counted each time
        b = np.zeros(10, np.float32)
        account.track(b, "cpu")
        account.track(b[2:], "cpu")  # a view: its storage is counted once
        assert account.held_bytes() == 40 and ledger.total == 40
        del b
    assert account.held_bytes() == 0
    with pytest.raises(ResourceExhaustedError):
        Budget(session, 100).take(120, "an op")


def test_tracking_settles_freed_arrays_in_batches_and_counts_storage_per_account():
    """`track` settles the queue of freed arrays once it is longer than _SETTLE_EVERY (a
    session that never reads a count nor nears a limit does not queue forever); one storage
    counts once per account (found again by its weak references), in each account that
    tracks it, and its free credits each."""
    from gradserve.server._limits import _SETTLE_EVERY, Account, Ledger

    ledger = Ledger()
    account, other = Account(ledger), Account(ledger)
    longest = 0
    for _ in range(4 * _SETTLE_EVERY):
        a = np.zeros(4, np.float32)
        account.track(a, "cpu")
        del a
        longest = max(longest, len(ledger.freed))
    assert longest <= _SETTLE_EVERY + 1
    assert len(account.refs) <= _SETTLE_EVERY + 1  # settled references are let go
    b = np.zeros(8, np.float32)  # 32 bytes
    for view in (b, b[1:], b.reshape(2, 4).T, b):
        account.track(view, "cpu")
        other.track(view, "cpu")
    assert account.held() == {"cpu": 32} and other.held() == {"cpu": 32}
    assert ledger.total == 64
    del b, view
    assert account.held_bytes() == other.held_bytes() == ledger.total == 0
    assert account.refs == {} and other.refs == {}
