"""The SDK's side of the wire beyond `gradserve.v1.codec`: gRPC failures become the typed
exceptions of `_errors` (in `rpc_errors` and nowhere else), fetched chunks become arrays,
large uploads are framed by hand, and a session's `Stats` count what it cost on the wire.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import grpc
import numpy as np
from gradserve.engine import DType, as_dtype
from gradserve.v1 import framing
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1.codec import ERROR_TRAILER, little_endian, tensor_data

from ._errors import ConnectionError, GradserveError, SessionLostError, error_from
from ._record import site_text

_UNKNOWN, _INTERNAL = grpc.StatusCode.UNKNOWN.value[0], grpc.StatusCode.INTERNAL.value[0]
_TRANSPORT_WORDS = ("Stream removed", "Socket closed", "Connection reset", "RST_STREAM",
                    "GOAWAY", "failed to connect")


# -- errors ------------------------------------------------------------------------------------
def error_from_rpc(e: grpc.RpcError, pinned: str | None = None) -> GradserveError:
    """The typed exception for a failed call, using the server's Error trailer when sent.
    `answered` on it says whether a gradserve server made the error (False: the transport
    or a proxy did, so the server may be gone).

    `pinned` is the session id when the call went through a proxy that pins the session to
    one replica (it carried the proxy's route header): then a failure the server did not make
    itself means that replica is gone, and the session with it.
    """
    code = e.code() if hasattr(e, "code") else None
    number = code.value[0] if code is not None else 2
    details = (e.details() if hasattr(e, "details") else None) or str(e)
    trailer = None
    if hasattr(e, "trailing_metadata"):
        for key, value in e.trailing_metadata() or ():
            if key == ERROR_TRAILER:
                trailer = pb.Error.FromString(value)
    if trailer is not None:
        err = error_from(trailer.code or number, trailer.message or details, trailer.kind,
                         trailer.op, trailer.site, trailer.op_index if trailer.op else -1,
                         trailer.reason, trailer.instance_id)
        err.answered = True
        return err
    if pinned is not None and _replica_gone(e, number, details):
        err = SessionLostError(
            f"session {pinned} is lost: the replica holding it is gone (the proxy pinning the "
            f"session to it answered: {details}); start a new session, it will be placed on "
            "a live replica")
        err.code, err.op, err.site, err.reason = number, None, None, "replica_gone"
    elif number == grpc.StatusCode.UNAVAILABLE.value[0] or (
            number in (_UNKNOWN, _INTERNAL) and any(w in details for w in _TRANSPORT_WORDS)):
        # No gradserve server answered (it sends a trailer with every error it makes): gRPC's
        # own words for nothing listening, or a connection that died mid-call.
        err = ConnectionError(f"gradserve server unreachable: {details}")
        err.code, err.op, err.site, err.reason = number, None, None, "unreachable"
    elif number == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]:
        # the call's own deadline passed with no word from a server
        err = ConnectionError(f"no answer from the gradserve server in time: {details}")
        err.code, err.op, err.site, err.reason = number, None, None, "unresponsive"
    else:
        err = error_from(number, details)
    err.answered = False
    return err


def _replica_gone(e: grpc.RpcError, number: int, details: str) -> bool:
    # A proxy that cannot reach the pinned replica answers UNAVAILABLE itself (with headers of
    # its own, unlike a channel that reached nobody: then the proxy is what is gone), or
    # resets a stream that was running on it.
    if number == grpc.StatusCode.UNAVAILABLE.value[0]:
        answered = hasattr(e, "trailing_metadata") and bool(e.trailing_metadata())
        return answered or "RST_STREAM" in details
    return number in (_UNKNOWN, _INTERNAL) and "RST_STREAM" in details


@contextlib.contextmanager
def rpc_errors(pinned: str | None = None):
    """Translate any gRPC failure raised inside the block into a gradserve exception;
    `pinned` as in `error_from_rpc`."""
    try:
        yield
    except grpc.RpcError as e:
        raise error_from_rpc(e, pinned) from None


def error_value(err: pb.Error, sent: tuple) -> GradserveError:
    """The exception for an Error carried as a value; `sent` is (op entries, sites) of the
    request, from which the failing op's name and the user's line are filled in."""
    op, site, index = err.op, err.site, err.op_index
    entries, sites = sent or ((), ())
    if 0 <= index < len(entries):
        op = op or entries[index][0]
        site = site or site_text(sites[index])
    else:
        index = -1
    out = error_from(err.code, err.message, err.kind, op, site, index, err.reason,
                     err.instance_id)
    out.answered = True
    return out


class Assembler:
    """Rebuilds tensors from FetchResponse chunks (raw bytes or values, at offsets)."""

    def __init__(self) -> None:
        self.done: dict[str, np.ndarray | None] = {}
        self._open: dict[str, np.ndarray] = {}

    def add_all(self, frames) -> Assembler:
        """Add every message of a Fetch stream, as its serialized bytes; self."""
        for frame in frames:
            self.add(*split_fetch(frame))
        return self

    def add(self, chunk: pb.FetchResponse, raw=None) -> None:
        """Add one chunk; `raw`: its bytes when they were kept out of `chunk` (a view)."""
        if chunk.none:
            self.done[chunk.id] = None
            return
        out = self._open.get(chunk.id)
        td = chunk.tensor
        if out is None:
            dtype = as_dtype(td.dtype or "float32")
            out = self._open[chunk.id] = np.empty(tuple(td.shape), dtype=dtype.np)
        if raw is None:
            raw = td.raw  # each read of a bytes field makes a new copy: read it once
        if raw:
            buf = out.reshape(-1).view(np.uint8)
            buf[chunk.offset:chunk.offset + len(raw)] = np.frombuffer(raw, np.uint8)
        elif td.values:
            flat = out.reshape(-1)
            flat[chunk.offset:chunk.offset + len(td.values)] = td.values
        if chunk.last:
            del self._open[chunk.id]
            if sys.byteorder == "big" and out.dtype.itemsize > 1:
                out = out.byteswap()
            self.done[chunk.id] = out


_TENSOR_FIELD = pb.FetchResponse.DESCRIPTOR.fields_by_name["tensor"].number


def split_fetch(frame: bytes) -> tuple[pb.FetchResponse, memoryview | None]:
    """A Fetch stream message as (the FetchResponse, its raw tensor bytes). When the raw
    bytes come as the server frames them (proto/gradserve/v1/framing.py: a last `tensor`
    field holding only `raw`), they are returned as a view of the frame and kept out of
    the parse, so they are copied once, into the tensor, instead of three times (into the
    message, out of it, into the tensor). Any other encoding is parsed as it is (None)."""
    view = memoryview(frame)
    try:
        found = _raw_field(view, len(frame))
    except ValueError:  # not protobuf as the server writes it: the parser will say how
        found = None
    if found is not None:
        start, raw = found
        return pb.FetchResponse.FromString(bytes(view[:start])), raw
    return pb.FetchResponse.FromString(frame), None


def _raw_field(view: memoryview, n: int) -> tuple[int, memoryview] | None:
    """(where the last field starts, its raw bytes) when the last field of a message is a
    `tensor` holding only `raw`."""
    pos = 0
    while pos < n:
        start = pos
        key, pos = _varint(view, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(view, pos)
        elif wire == 2:
            length, pos = _varint(view, pos)
            end = pos + length
            if key >> 3 == _TENSOR_FIELD and end == n:
                raw = _sole_raw(view[pos:end])
                return None if raw is None else (start, raw)
            pos = end
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            return None
    return None


def _sole_raw(payload: memoryview) -> memoryview | None:
    """The bytes of a TensorData that is exactly one `raw` field, else None."""
    key = framing.TENSOR_RAW
    if bytes(payload[:len(key)]) != key:
        return None
    length, pos = _varint(payload, len(key))
    return payload[pos:] if pos + length == len(payload) else None


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(view):
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("a truncated varint in a Fetch message")


def upload_requests(session_id: str, tensor_id: str, arr: np.ndarray, dtype: DType,
                    requires_grad: bool, chunk_bytes: int):
    """The Upload client stream, already serialized: a header, then the bytes in
    `chunk_bytes` pieces.

    Each chunk message is framed by hand (its one field's tag and length, then the bytes),
    which copies the tensor's bytes once; a protobuf message would copy them three times
    (slice, message, serialization), and on these machines each fresh copy of a large buffer
    costs page faults as much as the copy itself.
    """
    yield pb.UploadRequest(session_id=session_id, id=tensor_id, requires_grad=requires_grad,
                           tensor=tensor_data(arr, dtype, with_bytes=False)).SerializeToString()
    data = memoryview(little_endian(arr).reshape(-1)).cast("B")
    for start in range(0, len(data), chunk_bytes):
        piece = data[start:start + chunk_bytes]
        yield b"".join((framing.header(framing.UPLOAD_CHUNK, len(piece)), piece))


@dataclass
class Stats:
    """What a session cost on the wire; `waits` counts the calls that blocked on the server.

    >>> before = s.stats.waits
    >>> y = (s.ones(3) * 2).sum()  # buffered
    >>> s.stats.waits - before
    0
    >>> y.item()
    6.0
    >>> s.stats.waits - before
    1
    """

    waits: int = 0
    requests: int = 0
    ops: int = 0
    releases: int = 0
    uploads: int = 0
    fetch_streams: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
