"""Client unit tests run without a server: a stand-in client records what would be sent and
answers Pipeline requests with a handler the test chooses."""

from __future__ import annotations

import pytest
from gradserve._session import Session
from gradserve.v1 import gradserve_pb2 as pb


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
def s(client):
    session = Session(client, pb.SessionInfo(session_id="unit", device="cpu"), owned=True)
    yield session
    session.close()
