"""Client unit tests run without a server: a stand-in client records what would be sent and
answers Pipeline requests with a handler the test chooses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from gradserve._session import Session
from gradserve.v1 import codec
from gradserve.v1 import gradserve_pb2 as pb


def _op(entry, site, blobs) -> SimpleNamespace:
    name, inputs, outputs, attrs, flags = entry
    data = [blobs[x["d"]] for x in inputs if isinstance(x, dict)]
    return SimpleNamespace(op=name, inputs=inputs, outputs=outputs, attrs=attrs or {},
                           no_grad=bool(flags & codec.NO_GRAD),
                           inplace=bool(flags & codec.INPLACE), site=site,
                           data=data[0] if data else None)


def buffered(session) -> list[SimpleNamespace]:
    """The ops a session holds and has not sent yet, readably."""
    return [_op(e, site, session._blobs) for e, site in zip(session._ops, session._sites,
                                                            strict=True)]


def sent(request: pb.PipelineRequest) -> list[SimpleNamespace]:
    """The ops of a request the session sent (op_batch), readably; sites stay client-side."""
    if not request.op_batch:
        return []
    return [_op(e, "", request.op_data) for e in codec.unpack_ops(request.op_batch)]


class FakeStream:
    """A Pipeline call: one response per request, made by `handler`, in order."""

    def __init__(self, requests, handler):
        self._requests = requests
        self._handler = handler

    def __iter__(self):
        for request in self._requests:
            yield self._handler(request)

    def cancel(self):
        pass


class FakeClient:
    """Enough of Client for a Session: unary calls and streams are recorded, not sent."""

    def __init__(self):
        self.requests: list[pb.PipelineRequest] = []
        self.unary: list[tuple[str, object]] = []
        self.handler = self.ok

    def ok(self, request):
        return pb.PipelineResponse(seq=request.seq)

    def _record(self, request):
        self.requests.append(request)
        return self.handler(request)

    def _call(self, method, request, *, session_id=None, timeout=None):
        self.unary.append((method, request))
        return pb.CloseSessionResponse()

    def _call_stream(self, method, request, *, session_id=None):
        assert method == "Pipeline", method
        return FakeStream(request, self._record)

    def _forget(self, session):
        pass


@pytest.fixture
def client():
    return FakeClient()


@pytest.fixture
def s(client, monkeypatch):
    # These tests read the buffer: it is sent on by size here, never because a slow machine
    # let MAX_BATCH_DELAY pass (tests of that delay set it themselves).
    from gradserve import _session

    monkeypatch.setattr(_session, "MAX_BATCH_DELAY", float("inf"))
    session = Session(client, pb.SessionInfo(session_id="unit", device="cpu"), owned=True)
    yield session
    session.close()


@pytest.fixture
def ops():
    """`ops(s)`: what session s has buffered; `ops.sent(request)`: what a request carried."""
    return SimpleNamespace(of=buffered, sent=sent)
