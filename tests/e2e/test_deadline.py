"""A request stopped at the server's compute budget (`--max-request-seconds`) reaches the SDK
as `gs.DeadlineExceededError`, not as a broken connection, and the session goes on."""

from __future__ import annotations

import gradserve as gs
import pytest
from gradserve.server import create_server


@pytest.fixture(scope="module")
def tight():
    """A server that stops any request after 50 ms of compute."""
    srv, port = create_server("127.0.0.1:0", max_request_seconds=0.05)
    srv.start()
    yield f"127.0.0.1:{port}"
    srv.stop(0).wait()


@gs.compile  # batches end at 64 ops, never by the clock: a loaded client cuts none short
def _slow_batch(x, n: int = 64):
    """`n` matrix products of 2 GFLOP each on one request (the SDK sends 64 ops a batch): tens
    of times the budget, while making and summing `x` takes a few milliseconds, so a loaded
    machine neither stops the setup nor lets the slow batch through."""
    y = x
    for _ in range(n):
        y = y @ x
    return y


def test_a_request_past_the_budget_raises_deadline_exceeded_and_the_session_goes_on(tight):
    with gs.connect(tight) as client, client.session() as s:
        x = s.ones(1000, 1000)
        x.sum().item()  # made, in a request of its own
        with pytest.raises(gs.DeadlineExceededError, match="--max-request-seconds") as info:
            _slow_batch(x).sum().item()
        err = info.value
        assert isinstance(err, gs.GradserveError)
        assert not isinstance(err, gs.ConnectionError)
        assert err.code == 4  # DEADLINE_EXCEEDED
        # the session and its stream are fine: the ops before still hold, new ones run
        assert x.sum().item() == 1_000_000.0
        w = s.tensor([1.0, 2.0, 3.0], requires_grad=True)
        (w * w).sum().backward()
        assert w.grad.tolist() == [2.0, 4.0, 6.0]
        assert s.info()["tensor_count"] >= 1


def test_the_budget_refusal_of_a_unary_call_is_the_same_class(tight):
    """RunOps (what grpcurl users call) answers with the error trailer; the SDK's status
    table reads it the same way."""
    import grpc
    from gradserve import _wire
    from gradserve.v1 import gradserve_pb2 as pb
    from gradserve.v1 import gradserve_pb2_grpc

    with grpc.insecure_channel(tight) as channel:
        stub = gradserve_pb2_grpc.GradserveServiceStub(channel)
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        ops = [pb.OpCall(op="ones", outputs=["x"])]
        ops[0].attrs.update({"shape": [2000, 2000], "dtype": "float32"})
        for i in range(64):
            ops.append(pb.OpCall(op="mul", inputs=[pb.Operand(tensor="x" if i == 0 else
                                                              f"y{i - 1}"),
                                                   pb.Operand(float=1.0001)],
                                 outputs=[f"y{i}"]))
        with pytest.raises(gs.DeadlineExceededError, match="--max-request-seconds"):
            with _wire.rpc_errors():
                stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=ops))
        info = stub.DescribeSession(pb.SessionRef(session_id=sid))
        assert info.session_id == sid
