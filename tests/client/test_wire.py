"""What the client puts on the wire, and how it reads answers and failures back, checked
against a stand-in Pipeline (no server)."""

from __future__ import annotations

import gc
import pathlib
import threading

import gradserve as gs
import grpc
import numpy as np
import pytest
from gradserve import _errors, _session, _wire
from gradserve._pipeline import MAX_IN_FLIGHT
from gradserve._session import INLINE_FETCH_BYTES, MAX_BATCH_OPS
from gradserve.v1 import codec
from gradserve.v1 import gradserve_pb2 as pb

HERE = pathlib.Path(__file__).name


def test_op_batch_encoding(s, client, ops):
    x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    line = _line_of("y = x * 2")
    y = x * 2  # y = x * 2
    z = y.clamp(min=0.0, max=2.5)
    s.ones(3) + True  # noqa: B018
    b = x.sum(dim=(0, 1), keepdim=True)
    tensor_op, mul, clamp, ones, add, summed = ops.of(s)
    assert mul.site == f"{HERE}:{line}"  # sites stay in the client, to name failing ops
    s.synchronize()
    tensor_op, mul, clamp, ones, add, summed = ops.sent(client.requests[-1])
    assert tensor_op.op == "tensor" and tensor_op.outputs == [x.id]
    assert list(tensor_op.data.shape) == [2, 2] and tensor_op.data.dtype == "float32"
    assert np.frombuffer(tensor_op.data.raw, "<f4").tolist() == [1., 2., 3., 4.]
    assert tensor_op.attrs == {"requires_grad": True}
    assert mul.op == "mul" and mul.outputs == [y.id] and not mul.no_grad
    assert mul.inputs == [x.id, 2] and type(mul.inputs[1]) is int
    assert clamp.attrs == {"min": 0.0, "max": 2.5} and type(clamp.attrs["min"]) is float
    assert clamp.outputs == [z.id]
    assert ones.attrs == {"shape": [3], "dtype": "float32", "device": "cpu"}
    assert add.inputs[1] is True
    assert summed.attrs == {"dim": [0, 1], "keepdim": True}
    assert summed.outputs == [b.id]


def test_attrs_travel_as_json_only(s):
    with pytest.raises(gs.InvalidArgumentError, match="tensor-valued op attributes"):
        s._send("sum", (s.ones(2),), ("o",), {"dim": s.ones(1)})
    with pytest.raises(gs.InvalidArgumentError, match="type object"):
        s._send("sum", (s.ones(2),), ("o",), {"dim": object()})
    with pytest.raises(gs.InvalidArgumentError, match="Overflow"):
        s.ones(2) + 2 ** 64
    s._send("sum", (s.ones(2),), ("o",), {"dim": (np.int64(0),), "dtype": gs.float32})
    raw = codec.pack_ops(s._ops[-1:])
    assert codec.unpack_ops(raw) == [["sum", [s._ops[-1][1][0]], ["o"],
                                      {"dim": [0], "dtype": "float32"}, 0]]


def _line_of(marker: str) -> int:
    for n, text in enumerate(pathlib.Path(__file__).read_text().splitlines(), 1):
        if text.strip().endswith("# " + marker):
            return n
    raise AssertionError(marker)


def test_inplace_and_commands(s, ops):
    x = s.tensor([1., 2.])
    x.mul_(3.0)
    x.requires_grad_()
    d = x.detach()
    data = x.data
    with gs.no_grad():
        x.zero_()
    buffered = ops.of(s)[1:]
    assert [o.op for o in buffered] == ["mul", "requires_grad_", "detach", "data", "fill"]
    assert buffered[0].inplace and buffered[0].outputs == [] and buffered[0].inputs[1] == 3.0
    assert buffered[1].attrs == {"requires_grad": True}
    assert buffered[2].outputs == [d.id] and buffered[3].outputs == [data.id]
    assert buffered[4].no_grad and buffered[4].inplace


def test_no_grad_is_thread_local_and_travels_with_each_op(s, ops, client):
    x = s.tensor([1.], requires_grad=True)
    ready, done = threading.Event(), threading.Event()
    out = {}

    def other_thread():
        ready.wait()
        out["t"] = x * 2  # grad mode is on in this thread
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with gs.no_grad():
        ready.set()
        done.wait()
        inside = x * 3
    t.join()
    assert out["t"].requires_grad and not inside.requires_grad
    s.synchronize()  # all of it sent (the buffer may also have left on its own, 2 ms after)
    by_output = {o.outputs[0]: o.no_grad for r in client.requests for o in ops.sent(r)
                 if o.outputs}
    assert by_output[out["t"].id] is False and by_output[inside.id] is True


def test_collected_proxies_are_released_with_the_next_request(s, client):
    x = s.ones(2)
    keep = s.ones(2)
    dead = x.id
    del x
    gc.collect()
    s.synchronize()
    (request,) = client.requests
    assert list(request.release) == [dead]
    assert keep.id not in request.release
    assert s.stats.waits == 1 and s.stats.releases == 1


def test_a_proxy_is_released_even_when_its_id_was_borrowed_again(s, client):
    from gradserve._tensor import from_info

    x = s.ones(2)
    tid = x.id
    info = pb.TensorInfo(id=tid, shape=[2], dtype="float32", device="cpu", is_leaf=True)
    borrowed = from_info(s, info)  # the session's table now names this one
    assert s._proxy(tid) is borrowed
    del x
    gc.collect()
    assert s._proxy(tid) is borrowed  # the owner's collection leaves the newer entry alone
    s.synchronize()
    assert list(client.requests[-1].release) == [tid]
    del borrowed
    gc.collect()
    assert s._proxy(tid) is None
    s.synchronize()
    assert list(client.requests[-1].release) == []


def test_borrowed_proxies_release_nothing(s, client):
    info = pb.TensorInfo(id="x", shape=[2], dtype="float32", device="cpu", is_leaf=True,
                         requires_grad=True, has_grad=True, version=3)
    client.handler = lambda r: pb.PipelineResponse(seq=r.seq, tensors=[info])
    x = s.get("x")
    assert x.requires_grad and x.is_leaf and x._version == 3 and x.id == "x"
    assert s.get("x") is x
    del x
    gc.collect()
    client.handler = client.ok
    s.synchronize()
    assert list(client.requests[-1].release) == []


def test_auto_flush_does_not_wait(s, client, ops):
    x = s.ones(1)
    for _ in range(MAX_BATCH_OPS + 10):
        x = x + 1
    assert s.stats.waits == 0 and s.stats.requests == 1
    s.synchronize()
    assert [len(ops.sent(r)) for r in client.requests] == [MAX_BATCH_OPS, 11]
    assert [r.seq for r in client.requests] == [1, 2]


def test_ops_waiting_too_long_are_sent_on_when_the_server_is_idle(s, client, ops,
                                                                    monkeypatch):
    monkeypatch.setattr(_session, "MAX_BATCH_DELAY", 0.0)
    x = s.ones(1)  # nothing in flight: sent at once
    assert s.stats.requests == 1 and s._ops == []
    y = x + 1  # the first is not answered yet: kept for a fuller batch
    assert s.stats.requests == 1 and len(s._ops) == 1
    s.synchronize()
    z = y + 1  # every answer read: sent at once
    assert s.stats.requests == 3 and s._ops == [] and s.stats.waits == 1
    s.synchronize()
    assert [[o.op for o in ops.sent(r)] for r in client.requests] == [
        ["ones"], ["add"], ["add"], []]
    assert ops.sent(client.requests[2])[0].outputs == [z.id]


def test_answers_nobody_waits_for_are_read_past_the_in_flight_limit(s, client):
    # no reader thread: a sender with MAX_IN_FLIGHT answers outstanding reads one itself
    x = s.ones(1)
    for _ in range(3 * MAX_IN_FLIGHT):
        x = x + 1
        s._flush()
    assert s.stats.waits == 0 and len(client.requests) >= 2 * MAX_IN_FLIGHT
    s.synchronize()
    assert len(client.requests) == 3 * MAX_IN_FLIGHT + 1


def test_threads_waiting_at_once_each_get_their_answer(s, client):
    answered = threading.Event()

    def answer(request):
        if request.fetch.ids:  # hold the first answer until both threads wait
            answered.wait(timeout=5)
        values = np.array([float(len(request.fetch.ids))], np.float32)
        return pb.PipelineResponse(seq=request.seq, fetched=[
            pb.FetchResponse(id=tid, last=True, tensor=codec.tensor_data(values, gs.float32))
            for tid in request.fetch.ids])

    client.handler = answer
    a, b = s.ones(1), s.ones(1)
    results = {}
    threads = [threading.Thread(target=lambda t=t: results.update({t.id: t.item()}))
               for t in (a, b)]
    for t in threads:
        t.start()
    answered.set()
    for t in threads:
        t.join(timeout=10)
    assert results == {a.id: 1.0, b.id: 1.0} and s.stats.waits == 2


def test_error_sent_ahead_is_raised_at_the_next_wait(s, client):
    def fail_second_op(request):
        if request.seq == 1:
            return pb.PipelineResponse(seq=1, error=pb.Error(
                code=3, message="The size of tensor a (2) must match", kind="InvalidArgumentError",
                op_index=1))
        return pb.PipelineResponse(seq=request.seq)

    client.handler = fail_second_op
    a = s.ones(2)
    b = a * 2  # the failing op
    s._flush()
    c = b.sum()
    with pytest.raises(gs.InvalidArgumentError) as info:
        c.item()
    message = str(info.value)
    assert "The size of tensor a (2) must match" in message
    site = f"{HERE}:{_line_of('the failing op')}"
    assert f"in op 'mul' sent from {site}" in message
    assert info.value.op == "mul" and info.value.site == site
    client.handler = client.ok
    s.synchronize()  # raised once, then forgotten


def test_fetch_reads_raw_values_and_grads(s, client):
    x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    y = s.arange(3)

    def answer(request):
        fetched = []
        for tid in request.fetch.ids:
            if tid == x.id and request.fetch.grad:
                arr = np.full((2, 2), 0.5, np.float32)
            elif tid == x.id:
                arr = np.array([[1., 2.], [3., 4.]], np.float32)
            else:
                arr = np.arange(3)
            fetched.append(pb.FetchResponse(id=tid, tensor=codec.tensor_data(
                arr, gs.engine.as_dtype(arr.dtype)), last=True))
        assert request.fetch.encoding == pb.ENCODING_RAW
        return pb.PipelineResponse(seq=request.seq, fetched=fetched)

    client.handler = answer
    with gs.no_grad():
        vx, vy = s.fetch(x, y)
    assert vx.dtype == np.float32 and vx.tolist() == [[1., 2.], [3., 4.]]
    assert vy.dtype == np.int64 and vy.tolist() == [0, 1, 2]
    vx[0, 0] = 9  # a fresh, writable array
    assert s.fetch(x, grad=True) == [None]  # no backward yet: known locally, no wait
    waits = s.stats.waits
    x._has_grad = True
    (g,) = s.fetch(x, grad=True)
    assert g.tolist() == [[0.5, 0.5], [0.5, 0.5]] and s.stats.waits == waits + 1


def test_repr_like_torch(s, client):
    x = s.tensor([0.5, 1.5], requires_grad=True)
    client.handler = lambda r: pb.PipelineResponse(seq=r.seq, fetched=[pb.FetchResponse(
        id=r.fetch.ids[0], last=True,
        tensor=codec.tensor_data(np.array([0.5, 1.5], np.float32), gs.float32))])
    assert repr(x) == "tensor([0.5000, 1.5000], requires_grad=True)"
    assert repr(x * 2).endswith("grad_fn=<MulBackward0>)")


def test_big_fetches_use_the_stream(s):
    big = s.zeros(INLINE_FETCH_BYTES // 4 + 1)
    small = s.zeros(2)
    calls = []

    def fetch_stream(ids, grad):
        calls.append(list(ids))
        return {i: np.zeros(big.shape, np.float32) for i in ids}

    s._fetch_stream = fetch_stream
    s._client.handler = lambda r: pb.PipelineResponse(seq=r.seq, fetched=[
        pb.FetchResponse(id=r.fetch.ids[0], last=True,
                         tensor=codec.tensor_data(np.zeros(2, np.float32), gs.float32))])
    a, b = s.fetch(big, small)
    assert calls == [[big.id]] and a.shape == big.shape and b.shape == (2,)


def test_closed_session(s, client):
    x = s.ones(2)
    s.close()
    s.close()
    assert [m for m, _ in client.unary] == ["CloseSession"]
    with pytest.raises(gs.SessionLostError):
        x + 1
    with pytest.raises(gs.SessionLostError):
        x.tolist()
    assert "closed session" in repr(x)


# -- the status -> exception table ------------------------------------------------------------
@pytest.mark.parametrize("code,kind,message,cls", [
    (3, "", "bad", gs.InvalidArgumentError),
    (3, "TensorIndexError", "index 5 is out of bounds", gs.TensorIndexError),
    (11, "", "out of range", gs.TensorIndexError),
    (9, "", "Trying to backward through the graph a second time", gs.AutogradError),
    (9, "AutogradError", "x", gs.AutogradError),
    (5, "", "session abc not found", gs.SessionLostError),
    (5, "SessionLostError", "gone", gs.SessionLostError),
    (5, "", "tensor 'x' not found in session abc", gs.InvalidArgumentError),
    (8, "", "limit", gs.ResourceExhaustedError),
    (16, "", "no token", gs.PermissionError),
    (7, "", "not yours", gs.PermissionError),
    (14, "", "draining", gs.ConnectionError),
    # the server stopped the request at its compute budget; the session goes on (the
    # transport's own DEADLINE_EXCEEDED, with no trailer, is ConnectionError: _wire)
    (4, "", "deadline", gs.DeadlineExceededError),
    (4, "DeadlineExceededError", "past --max-request-seconds", gs.DeadlineExceededError),
    (13, "", "boom", gs.GradserveError),
    (3, "SessionLostError", "a kind never contradicts the code", gs.InvalidArgumentError),
    # the server's own class names
    (5, "SessionNotFoundError", "session s1 not found (closed or reclaimed)", gs.SessionLostError),
    (5, "TensorNotFoundError", "tensor 'x' not found in session s1", gs.InvalidArgumentError),
    (7, "PermissionDeniedError", "not yours", gs.PermissionError),
    (16, "UnauthenticatedError", "no token", gs.PermissionError),
    (14, "UnavailableError", "the server is draining", gs.ConnectionError),
    (8, "ResourceExhaustedError", "limit", gs.ResourceExhaustedError),
])

def test_status_table(code, kind, message, cls):
    err = _errors.error_from(code, message, kind)
    assert type(err) is cls and str(err) == message and err.code == code


def test_a_failing_op_is_named_from_the_error_fields():
    err = _errors.error_from(3, "The size of tensor a", "", "mul", "t.py:9", 2)
    assert str(err) == "The size of tensor a\n  (in op 'mul' sent from t.py:9)"
    assert err.op == "mul" and err.site == "t.py:9"


def test_error_classes_are_builtin_friendly():
    assert issubclass(gs.AutogradError, RuntimeError)
    assert issubclass(gs.TensorIndexError, IndexError)
    assert issubclass(gs.ConnectionError, ConnectionError)
    assert issubclass(gs.PermissionError, PermissionError)
    for cls in (gs.SessionLostError, gs.ResourceExhaustedError, gs.ConnectionError,
                gs.DeadlineExceededError):
        assert issubclass(cls, gs.GradserveError)
    assert not issubclass(gs.DeadlineExceededError, ConnectionError)
    assert gs.AutogradError is gs.engine.AutogradError


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailer=None):
        self._code, self._details, self._trailer = code, details, trailer

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        if self._trailer is None:
            return ()
        return ((codec.ERROR_TRAILER, self._trailer.SerializeToString()),)


def test_rpc_errors_use_the_error_trailer():
    trailer = pb.Error(code=5, message="session s1 was reclaimed", kind="SessionNotFoundError",
                       reason="reclaimed", instance_id="abc")
    with pytest.raises(gs.SessionLostError, match="reclaimed") as lost:
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.NOT_FOUND, "not found", trailer)
    assert lost.value.reason == "reclaimed" and lost.value.instance == "abc"
    assert lost.value.answered
    with pytest.raises(gs.ConnectionError, match="unreachable: connection refused") as info:
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert info.value.reason == "unreachable" and not info.value.answered
    draining = pb.Error(code=14, message="the server is draining", kind="UnavailableError")
    with pytest.raises(gs.ConnectionError, match="draining") as info:
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.UNAVAILABLE, "draining", draining)
    assert info.value.reason == "draining"
    with pytest.raises(gs.PermissionError):
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "missing token")
    with pytest.raises(gs.ConnectionError, match="unreachable: Stream removed"):
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.UNKNOWN, "Stream removed")
    with pytest.raises(gs.GradserveError, match="Exception calling application") as info:
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.UNKNOWN, "Exception calling application: x")
    assert type(info.value) is gs.GradserveError


def test_a_deadline_is_the_servers_budget_only_with_its_trailer():
    budget = pb.Error(code=4, message="the request ran past its budget (--max-request-seconds)",
                      kind="DeadlineExceededError", op_index=-1)
    with pytest.raises(gs.DeadlineExceededError, match="max-request-seconds") as info:
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "x", budget)
    assert info.value.answered and not isinstance(info.value, gs.ConnectionError)
    # no trailer: the call's own deadline passed with no word from any server
    with pytest.raises(gs.ConnectionError, match="no answer") as info:
        with _wire.rpc_errors():
            raise _FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    assert info.value.reason == "unresponsive" and not info.value.answered


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 20000])
def test_hand_framed_upload_chunks_parse_as_protobuf(size):
    arr = (np.arange(size, dtype=np.uint8) * 7).astype(np.float32)
    msgs = [pb.UploadRequest.FromString(m)
            for m in _wire.upload_requests("s", "t", arr, gs.float32, False, chunk_bytes=999)]
    assert all(not m.session_id and not m.id for m in msgs[1:])
    assert b"".join(m.chunk for m in msgs[1:]) == arr.astype("<f4").tobytes()


def test_chunked_upload_messages():
    arr = np.arange(10, dtype=np.float64)
    msgs = [pb.UploadRequest.FromString(m)
            for m in _wire.upload_requests("s", "t", arr, gs.float64, True, chunk_bytes=32)]
    head, *chunks = msgs
    assert head.id == "t" and head.requires_grad and list(head.tensor.shape) == [10]
    assert head.tensor.dtype == "float64" and not head.tensor.raw
    assert [len(c.chunk) for c in chunks] == [32, 32, 16]
    assert np.frombuffer(b"".join(c.chunk for c in chunks), "<f8").tolist() == arr.tolist()


def test_assembler_rebuilds_chunked_tensors():
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    raw = arr.astype("<f4").tobytes()
    asm = _wire.Assembler()
    asm.add(pb.FetchResponse(id="a", tensor=pb.TensorData(shape=[3, 4], dtype="float32",
                                                          raw=raw[:20])))
    asm.add(pb.FetchResponse(id="a", tensor=pb.TensorData(raw=raw[20:]), offset=20, last=True))
    asm.add(pb.FetchResponse(id="g", none=True, last=True))
    assert asm.done["a"].tolist() == arr.tolist() and asm.done["g"] is None


def test_import_gradserve_is_light():
    import subprocess
    import sys

    code = ("import sys, gradserve; "
            "print(any(m == 'grpc' or m.startswith(('grpc.', 'google.protobuf')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_broken_stream_is_reported_once_then_replaced(s, client):
    def drop(request):
        raise gs.ConnectionError("gradserve server unavailable: connection reset")

    client.handler = drop
    x = s.ones(2)
    with pytest.raises(gs.ConnectionError, match="connection reset"):
        x.tolist()
    client.handler = client.ok
    s.synchronize()  # a fresh stream; request numbers are the session's, across streams
    assert [r.seq for r in client.requests] == [1, 2]
