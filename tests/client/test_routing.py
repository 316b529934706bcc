"""Sessions behind a pinning proxy: which failures mean the session's replica is gone.

A call carrying the proxy's route is `pinned`. The failures below are the ones seen through
Envoy on loopback (tests/deploy runs the real thing); here each is mapped without a server.
"""

from __future__ import annotations

import gradserve as gs
import grpc
import pytest
from gradserve import _wire
from gradserve.v1 import gradserve_pb2 as pb


class _Failed(grpc.RpcError):
    def __init__(self, code, details, trailing=()):
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


def _raised(error, pinned="s1"):
    with pytest.raises(gs.GradserveError) as info:
        with _wire.rpc_errors(pinned=pinned):
            raise error
    return info.value


PROXY_HEADERS = (("date", "Sun, 29 Nov 2026 16:19:15 GMT"), ("server", "envoy"))
REFUSED = "upstream connect error or disconnect/reset before headers. reset reason: " \
          "remote connection failure"
RESET = "Stream removed (RST_STREAM (Received RST_STREAM with error code 2))"


@pytest.mark.parametrize("error", [
    _Failed(grpc.StatusCode.UNAVAILABLE, REFUSED, PROXY_HEADERS),
    _Failed(grpc.StatusCode.UNAVAILABLE, "no healthy upstream", PROXY_HEADERS),
    _Failed(grpc.StatusCode.INTERNAL, RESET),
    _Failed(grpc.StatusCode.UNKNOWN, RESET),
], ids=["refused", "unhealthy", "reset-internal", "reset-unknown"])
def test_a_pinned_call_the_proxy_cannot_deliver_loses_the_session(error):
    err = _raised(error)
    assert type(err) is gs.SessionLostError
    assert "session s1 is lost: the replica holding it is gone" in str(err)
    assert "TTL" not in str(err)
    # Without a route the same failure says nothing about a session.
    assert type(_raised(error, pinned=None)) is gs.ConnectionError


def test_a_pinned_call_that_reaches_no_proxy_is_a_connection_error():
    # Nothing answered (no headers at all): the proxy is what is gone, the session may live.
    err = _raised(_Failed(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert type(err) is gs.ConnectionError


def test_the_server_s_own_answer_wins_over_the_proxy_rule():
    draining = pb.Error(code=14, message="the server is draining", kind="UnavailableError")
    err = _raised(_Failed(grpc.StatusCode.UNAVAILABLE, "the server is draining",
                          [*PROXY_HEADERS, (_wire.ERROR_TRAILER, draining.SerializeToString())]))
    assert type(err) is gs.ConnectionError and "draining" in str(err)
    unknown = pb.Error(code=5, message="session s1 not found", kind="SessionNotFoundError")
    err = _raised(_Failed(grpc.StatusCode.NOT_FOUND, "session s1 not found",
                          [(_wire.ERROR_TRAILER, unknown.SerializeToString())]))
    assert type(err) is gs.SessionLostError and str(err) == "session s1 not found"
