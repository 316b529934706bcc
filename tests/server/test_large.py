"""Large tensors: Upload and Fetch stream in chunks of at most 1 MiB, with no 4 MB ceiling."""

from __future__ import annotations

import gc
import time

import grpc
import numpy as np
from gradserve.v1 import gradserve_pb2 as pb

MiB = 1 << 20


def _upload(stub, sid, tid, array: np.ndarray, chunk=MiB, requires_grad=False):
    little = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
    data = memoryview(little.reshape(-1).view(np.uint8))
    dtype = {"f": str(array.dtype), "b": "bool", "i": "int64"}[array.dtype.kind]

    def messages():
        yield pb.UploadRequest(session_id=sid, id=tid, requires_grad=requires_grad,
                               tensor=pb.TensorData(shape=array.shape, dtype=dtype))
        for offset in range(0, len(data), chunk):
            yield pb.UploadRequest(chunk=bytes(data[offset:offset + chunk]))

    return stub.Upload(messages())


def test_64mib_round_trip(stub):
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    n = 64 * MiB // 4
    source = np.arange(n, dtype=np.float32)
    info = _upload(stub, sid, "big", source.reshape(1024, -1)).info
    assert list(info.shape) == [1024, n // 1024] and info.dtype == "float32"
    assert stub.DescribeSession(pb.SessionRef(session_id=sid)).bytes == 64 * MiB

    expected = memoryview(source).cast("B")
    received = 0
    request = pb.FetchRequest(session_id=sid, ids=["big"], encoding=pb.ENCODING_RAW)
    for i, msg in enumerate(stub.Fetch(request)):
        assert msg.id == "big" and msg.offset == received
        assert (list(msg.tensor.shape) == [1024, n // 1024]) == (i == 0)
        assert 0 < len(msg.tensor.raw) <= MiB
        assert msg.tensor.raw == expected[received:received + len(msg.tensor.raw)]
        received += len(msg.tensor.raw)
        assert msg.last == (received == len(expected))
    assert received == 64 * MiB

    # and it is a live tensor: compute on it
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        pb.OpCall(op="getitem", inputs=[pb.Operand(tensor="big")], outputs=["corner"],
                  attrs=_struct({"key": [["int", 1023], ["int", -1]]}))], release=["big"]))
    last = [m for m in stub.Fetch(pb.FetchRequest(session_id=sid, ids=["corner"]))]
    assert list(last[0].tensor.values) == [n - 1]
    stub.CloseSession(pb.SessionRef(session_id=sid))


def test_released_tensors_free_their_bytes_without_the_cyclic_collector(stub):
    """An uploaded, fetched, then released tensor is freed (and no longer counted) at its
    release, not when the cyclic collector next runs (`gradserve serve` runs it rarely):
    nothing a finished call leaves behind holds its array."""
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    gc.collect()
    gc.disable()
    try:
        _upload(stub, sid, "a", np.ones(MiB // 4, dtype=np.float32))
        fetched = list(stub.Fetch(pb.FetchRequest(session_id=sid, ids=["a"],
                                                  encoding=pb.ENCODING_RAW)))
        assert sum(len(m.tensor.raw) for m in fetched) == MiB
        assert stub.DescribeSession(pb.SessionRef(session_id=sid)).bytes == MiB
        stub.Release(pb.ReleaseRequest(session_id=sid, ids=["a"]))
        assert stub.DescribeSession(pb.SessionRef(session_id=sid)).bytes == 0
    finally:
        gc.enable()
    stub.CloseSession(pb.SessionRef(session_id=sid))


def _struct(d):
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update(d)
    return s


def test_values_are_chunked_by_elements(stub, wire):
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    n = 300_000
    _upload(stub, sid, "v", np.arange(n, dtype=np.float64))
    msgs = list(stub.Fetch(pb.FetchRequest(session_id=sid, ids=["v"])))
    per = MiB // 8
    assert [m.offset for m in msgs] == [0, per, 2 * per]
    assert [m.last for m in msgs] == [False, False, True]
    assert all(len(m.tensor.values) * 8 <= MiB for m in msgs)
    values = [v for m in msgs for v in m.tensor.values]
    assert values[:3] == [0, 1, 2] and values[-1] == n - 1 and len(values) == n
    assert wire.fetch(stub, sid, [], raw=True) == {}
    stub.CloseSession(pb.SessionRef(session_id=sid))


def test_empty_and_scalar_tensors(stub, wire):
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    _upload(stub, sid, "e", np.zeros((0, 3), np.float32))
    _upload(stub, sid, "s", np.array(4, np.int64))
    msgs = list(stub.Fetch(pb.FetchRequest(session_id=sid, ids=["e", "s"],
                                           encoding=pb.ENCODING_RAW)))
    assert [(m.id, list(m.tensor.shape), m.last) for m in msgs] == [("e", [0, 3], True),
                                                                     ("s", [], True)]
    assert wire.fetch(stub, sid, ["s"])["s"] == 4
    stub.CloseSession(pb.SessionRef(session_id=sid))


def test_cancelled_fetch_releases_the_session(stub, wire):
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    _upload(stub, sid, "b", np.ones(16 * MiB, np.bool_))
    call = stub.Fetch(pb.FetchRequest(session_id=sid, ids=["b"], encoding=pb.ENCODING_RAW))
    first = next(call)
    assert len(first.tensor.raw) == MiB and not first.last
    call.cancel()
    started = time.monotonic()
    wire.run_seed(stub, sid)  # needs the session lock the fetch held
    assert time.monotonic() - started < 5
    try:
        next(call)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.CANCELLED
    stub.CloseSession(pb.SessionRef(session_id=sid))
