"""Wire messages <-> the executor's plain Python, and nothing else.

Inputs are validated here as far as the message alone allows (shapes, dtypes, byte counts,
attr types); anything wrong raises InvalidArgumentError, never a bare Python error. Outputs
are built without copying large arrays more than once (a chunk is copied into its message).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import numpy as np
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from gradserve.engine import DType, InvalidArgumentError, as_dtype
from gradserve.engine._dtype import from_numpy_dtype
from gradserve.v1 import framing
from gradserve.v1 import gradserve_pb2 as pb

from ._executor import (
    BackwardAction,
    FetchAction,
    GradAction,
    ListAction,
    OpSpec,
    Ref,
    TensorMeta,
)
from ._sessions import Session

CHUNK_BYTES = 1 << 20  # the most element bytes one FetchResponse carries
FLOATS_ATTR = "__floats__"


# -- attrs ----------------------------------------------------------------------------------
def attrs_from_struct(struct: struct_pb2.Struct) -> dict:
    """A Struct as op attrs: lists become tuples, integral numbers ints, null None.

    JSON has one number type, so an attr whose value must stay a float (`clamp(min=1.0)`,
    `full(value=2.0)`) is listed by name in the reserved attr `__floats__`.
    """
    fields = struct.fields
    floats: set[str] = set()
    if FLOATS_ATTR in fields:
        names = _value(fields[FLOATS_ATTR], keep_float=False)
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
            raise InvalidArgumentError(f"attr {FLOATS_ATTR} must be a list of attr names")
        floats = set(names)
    return {name: _value(value, keep_float=name in floats)
            for name, value in fields.items() if name != FLOATS_ATTR}


def _value(value: struct_pb2.Value, keep_float: bool):
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        x = value.number_value
        if not keep_float and x.is_integer():
            return int(x)
        return x
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "list_value":
        return tuple(_value(v, keep_float) for v in value.list_value.values)
    if kind == "struct_value":
        return {k: _value(v, False) for k, v in value.struct_value.fields.items()}
    return None  # null_value, or a Value with nothing set


# -- ops ------------------------------------------------------------------------------------
def _operand(operand: pb.Operand, index: int):
    kind = operand.WhichOneof("kind")
    if kind == "tensor":
        return Ref(operand.tensor)
    if kind == "float":
        return float(operand.float)
    if kind == "int":
        return int(operand.int)
    if kind == "bool":
        return bool(operand.bool)
    raise InvalidArgumentError(f"input {index} is empty: set one of tensor, float, int, bool")


def _operands(inputs) -> tuple:
    out = []
    for x in inputs:  # tensor ids first: by far the most common operand
        out.append(Ref(x.tensor) if x.WhichOneof("kind") == "tensor" else _operand(x, len(out)))
    return tuple(out)


def op_spec(call: pb.OpCall) -> OpSpec:
    """One OpCall as an OpSpec. A call that cannot be converted gives an OpSpec carrying the
    error, raised when its turn comes, so the ops before it in the request still run."""
    try:
        return OpSpec(
            op=call.op,
            inputs=_operands(call.inputs),
            outputs=tuple(call.outputs),
            attrs=attrs_from_struct(call.attrs) if call.HasField("attrs") else {},
            no_grad=call.no_grad,
            inplace=call.inplace,
            data=array_from_tensor_data(call.data) if call.HasField("data") else None,
            site=call.site,
        )
    except Exception as exc:
        return OpSpec(op=call.op, site=call.site, error=exc)


def backward_action(req: pb.BackwardRequest) -> BackwardAction:
    return BackwardAction(
        tensors=list(req.tensors), grad_tensors=list(req.grad_tensors),
        retain_graph=req.retain_graph if req.HasField("retain_graph") else None,
        create_graph=req.create_graph, inputs=list(req.inputs),
    )


def grad_action(req: pb.GradRequest) -> GradAction:
    return GradAction(
        outputs=list(req.outputs), inputs=list(req.inputs), results=list(req.results),
        grad_outputs=list(req.grad_outputs),
        retain_graph=req.retain_graph if req.HasField("retain_graph") else None,
        create_graph=req.create_graph, allow_unused=req.allow_unused,
    )


def fetch_action(req: pb.FetchRequest) -> FetchAction:
    return FetchAction(ids=list(req.ids), grad=req.grad)


def list_action(req: pb.ListTensorsRequest) -> ListAction:
    return ListAction(ids=list(req.ids))


def encoding(req: pb.FetchRequest) -> int:
    """The request's encoding; UNSPECIFIED reads as VALUES."""
    if req.encoding == pb.ENCODING_RAW:
        return pb.ENCODING_RAW
    if req.encoding in (pb.ENCODING_UNSPECIFIED, pb.ENCODING_VALUES):
        return pb.ENCODING_VALUES
    raise InvalidArgumentError(f"unknown encoding {req.encoding}")


# -- tensor data in -------------------------------------------------------------------------
def tensor_header(data: pb.TensorData) -> tuple[DType, tuple[int, ...], int]:
    """dtype, shape and byte size that `data` declares; InvalidArgumentError if unusable."""
    dtype = as_dtype(data.dtype or "float32")
    shape = tuple(int(n) for n in data.shape)
    if any(n < 0 for n in shape):
        raise InvalidArgumentError(f"shape {list(shape)} has a negative dimension")
    numel = math.prod(shape)
    return dtype, shape, numel * dtype.itemsize


def array_from_tensor_data(data: pb.TensorData) -> np.ndarray:
    """A fresh, writable host array from `values` or `raw` (little-endian, C order)."""
    dtype, shape, nbytes = tensor_header(data)
    numel = nbytes // dtype.itemsize if dtype.itemsize else 0
    raw = data.raw  # each read of a bytes field copies it: read it once
    if len(data.values) and len(raw):
        raise InvalidArgumentError("TensorData takes values or raw, not both")
    if len(raw) or (not len(data.values) and numel == 0):
        return array_from_raw(raw, dtype, shape)
    if len(data.values) != numel:
        raise InvalidArgumentError(
            f"{len(data.values)} values given for shape {list(shape)}, which holds {numel}"
        )
    return array_from_values(np.array(data.values, dtype=np.float64), dtype).reshape(shape)


def array_from_values(values: np.ndarray, dtype: DType) -> np.ndarray:
    """float64 values as `dtype`: ints must be integral and in range; bools are x != 0."""
    if dtype.is_floating_point:
        with np.errstate(over="ignore"):  # 1e300 as float32 is inf, as in torch
            return values.astype(dtype.np)
    if dtype.kind == 0:
        return values != 0
    bad = ~np.isfinite(values) | (values != np.round(values))
    bad |= (values < -(2.0 ** 63)) | (values >= 2.0 ** 63)
    if bad.any():
        raise InvalidArgumentError(
            f"value {values[bad][0]!r} is not a valid {dtype.name} (integral and in range)"
        )
    return values.astype(dtype.np)


def array_from_raw(raw, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """A host array from little-endian bytes; their length must match shape and dtype."""
    nbytes = math.prod(shape) * dtype.itemsize
    if len(raw) != nbytes:
        raise InvalidArgumentError(
            f"raw has {len(raw)} bytes but shape {list(shape)} of {dtype.name} needs {nbytes}"
        )
    if dtype.kind == 0:
        return (np.frombuffer(raw, dtype=np.uint8) != 0).reshape(shape)
    arr = np.frombuffer(raw, dtype=dtype.np.newbyteorder("<")).reshape(shape)
    # bytes are read-only: copy once; a writable buffer (an upload's) is used in place
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr.astype(dtype.np, copy=False)


def upload_messages(received: Iterator[bytes]):
    """An Upload stream as it arrives (serialized messages) -> (the first message parsed, or
    None when there is none; the later messages' chunk bytes).

    A later message that holds only its chunk (what the SDK sends) is read in place, a view
    into the received bytes; a protobuf parse would copy its megabyte twice (into the message,
    then out of it). Any other message is parsed in full, so every valid encoding is taken.
    """
    first = next(received, None)
    return (None if first is None else _parse_upload(first)), (
        _chunk_bytes(message) for message in received)


def _parse_upload(message: bytes) -> pb.UploadRequest:
    try:
        return pb.UploadRequest.FromString(message)
    except DecodeError:
        raise InvalidArgumentError("malformed UploadRequest message") from None


def _chunk_bytes(message: bytes):
    view = framing.sole_field(message, framing.UPLOAD_CHUNK)
    return view if view is not None else _parse_upload(message).chunk


def array_from_upload(first: pb.UploadRequest, rest: Iterator,
                      check_room: Callable[[int], None]) -> np.ndarray:
    """The tensor an Upload stream carries: `first` has the header (and maybe values or the
    first bytes in tensor.raw or chunk), `rest` the later messages' chunk bytes. The bytes land
    in one preallocated buffer that becomes the array, and must add up to exactly its size."""
    dtype, shape, nbytes = tensor_header(first.tensor)
    if len(first.tensor.values):
        if len(first.chunk) or next(rest, None) is not None:
            raise InvalidArgumentError("an upload with values takes no chunks")
        return array_from_tensor_data(first.tensor)
    check_room(nbytes)
    buf = np.empty(nbytes, dtype=np.uint8)
    received = 0
    pieces = itertools.chain((first.tensor.raw, first.chunk), rest)
    for piece in pieces:
        if received + len(piece) > nbytes:
            raise InvalidArgumentError(
                f"upload of {first.id!r} sent more than the {nbytes} bytes that shape "
                f"{list(shape)} of {dtype.name} holds"
            )
        buf[received:received + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        received += len(piece)
    if received != nbytes:
        raise InvalidArgumentError(
            f"upload of {first.id!r} truncated: got {received} of {nbytes} bytes"
        )
    return array_from_raw(buf, dtype, shape)


def session_info(session: Session, ttl: float | None) -> pb.SessionInfo:
    return pb.SessionInfo(
        session_id=session.id, device=session.device, owner=session.owner,
        tensor_count=len(session.tensors), bytes=session.nbytes,
        idle_seconds=session.idle_seconds(), ttl_seconds=ttl or 0.0,
    )


# -- tensor data out ------------------------------------------------------------------------
def tensor_info(meta: TensorMeta) -> pb.TensorInfo:
    return pb.TensorInfo(
        id=meta.id, shape=meta.shape, dtype=meta.dtype, device=meta.device,
        requires_grad=meta.requires_grad, is_leaf=meta.is_leaf, grad_fn=meta.grad_fn,
        version=meta.version, has_grad=meta.has_grad,
    )


def fetch_chunks(tid: str, array: np.ndarray | None, enc: int,
                 chunk_bytes: int | None = CHUNK_BYTES) -> Iterator[pb.FetchResponse]:
    """FetchResponses for one tensor: the first has shape and dtype, each carries at most
    `chunk_bytes` of elements (None: all in one), `offset` in bytes (raw) or elements."""
    for msg, raw in _chunk_parts(tid, array, enc, chunk_bytes):
        if raw is not None:
            msg.tensor.raw = bytes(raw)
        yield msg


def fetch_frames(tid: str, array: np.ndarray | None, enc: int) -> Iterator[bytes]:
    """fetch_chunks, serialized, for the Fetch stream. A raw chunk's bytes are framed by hand
    as a second `tensor` field after the rest of the message (protobuf merges the two), so
    they are copied once on their way out instead of three times."""
    for msg, raw in _chunk_parts(tid, array, enc, CHUNK_BYTES):
        head = msg.SerializeToString()
        if raw is None:
            yield head
            continue
        inner = framing.header(framing.TENSOR_RAW, len(raw))
        yield b"".join((head, framing.header(framing.FETCH_TENSOR, len(inner) + len(raw)),
                        inner, raw))


def _chunk_parts(tid: str, array: np.ndarray | None, enc: int, chunk_bytes: int | None):
    """(FetchResponse without its raw bytes, those bytes as a memoryview or None) per chunk."""
    if array is None:
        yield pb.FetchResponse(id=tid, none=True, last=True), None
        return
    header = pb.TensorData(shape=array.shape, dtype=from_numpy_dtype(array.dtype).name)
    flat = array.reshape(-1)
    if enc == pb.ENCODING_RAW:
        data = memoryview(flat.view(np.uint8))
        per_item = 1
    else:
        data = flat
        per_item = 8  # each value is a double on the wire
    total = len(data)
    step = total if chunk_bytes is None else max(1, chunk_bytes // per_item)
    offset = 0
    while True:
        part = data[offset:offset + step]
        msg = pb.FetchResponse(id=tid, offset=offset, last=offset + len(part) >= total)
        if offset == 0:
            msg.tensor.CopyFrom(header)
        if enc == pb.ENCODING_RAW:
            yield msg, part
        else:
            msg.tensor.values.extend(part.astype(np.float64).tolist())
            yield msg, None
        offset += len(part)
        if offset >= total:
            return


def fetch_whole(tid: str, array: np.ndarray | None, enc: int) -> pb.FetchResponse:
    """One FetchResponse with the whole tensor (the Pipeline's inline fetch)."""
    return next(fetch_chunks(tid, array, enc, chunk_bytes=None))


def inline_bytes(fetched, enc: int) -> int:
    """How many element bytes an inline fetch of `fetched` would put into one message."""
    per = (lambda a: a.nbytes) if enc == pb.ENCODING_RAW else (lambda a: 8 * a.size)
    return sum(per(a) for _, a in fetched if a is not None)

