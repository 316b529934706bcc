"""Wire messages <-> the executor's plain Python, and nothing else.

Every request is lowered here to one `Request` (`_requests`): the OpCalls of RunOps and of a
Pipeline request (attrs in a Struct, for grpcurl) and a Pipeline's `op_batch` (the SDK's JSON
entries) become `OpSource`s of the same ops; the Backward, Grad, Fetch, ListTensors and
DescribeGraph calls and a Pipeline's `then` become the same actions (and an Upload, once
its bytes arrived, one too); Release and a request's
`release` the same ids. The servicer then asks `Executor.run` and turns its `StepResult`
back into the method's reply.

Inputs are validated here as far as the message alone allows (shapes, dtypes, byte counts,
attr types); anything wrong raises InvalidArgumentError, never a bare Python error. Outputs
are built without copying large arrays more than once (a chunk is copied into its message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
from google.protobuf.message import DecodeError
from gradserve.engine import InvalidArgumentError
from gradserve.engine.seam import backend, from_numpy_dtype
from gradserve.v1 import framing
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1.codec import (
    CHUNK_BYTES,
    DATA_OP,
    INPLACE,
    NO_GRAD,
    array_from_raw,
    array_from_tensor_data,
    attrs_from_struct,
    batch_op,
    tensor_header,
)

from ._errors import ResourceExhaustedError
from ._limits import Limits
from ._opinfo import OpInfo
from ._requests import (
    BackwardAction,
    FetchAction,
    GradAction,
    GraphAction,
    ListAction,
    Op,
    OpSource,
    Request,
    TensorMeta,
    UploadAction,
)
from ._sessions import Session


# -- ops ------------------------------------------------------------------------------------
def call_source(calls) -> OpSource:
    """The OpCalls of a request (RunOps, or PipelineRequest.ops)."""
    return OpSource(calls, read_call, lambda call: (call.op, call.site))


def read_call(call: pb.OpCall) -> Op:
    """One OpCall as the executor's op."""
    flags = (NO_GRAD if call.no_grad else 0) | (INPLACE if call.inplace else 0)
    inputs = tuple(_operand(x, i) for i, x in enumerate(call.inputs))
    if call.HasField("data"):
        if call.op != DATA_OP:
            raise InvalidArgumentError(f"only '{DATA_OP}' takes data, not {call.op!r}")
        inputs = (array_from_tensor_data(call.data), *inputs)
    attrs = attrs_from_struct(call.attrs) if call.HasField("attrs") else {}
    outputs = tuple(call.outputs)
    if not all(outputs):
        raise InvalidArgumentError("tensor ids must be non-empty strings")
    return call.op, inputs, outputs, attrs, flags


def _operand(operand: pb.Operand, index: int):
    kind = operand.WhichOneof("kind")
    if kind == "tensor":
        return operand.tensor
    if kind == "float":
        return float(operand.float)
    if kind == "int":
        return int(operand.int)
    if kind == "bool":
        return bool(operand.bool)
    raise InvalidArgumentError(f"input {index} is empty: set one of tensor, float, int, bool")


def batch_source(req: pb.PipelineRequest, limits: Limits | None = None) -> OpSource:
    """A PipelineRequest's op_batch (the SDK's ops), read one entry at a time as the ops run
    (an op that fails stops the reading: a huge batch whose first op fails is never parsed
    whole); `op_data` arrays are made when an op that names them runs."""
    data = req.op_data
    arrays: dict[int, np.ndarray] = {}

    def array(k: int) -> np.ndarray:
        if not 0 <= k < len(data):
            raise InvalidArgumentError(f"op_data[{k}] does not exist ({len(data)} given)")
        if k not in arrays:
            arrays[k] = array_from_tensor_data(data[k])
        return arrays[k]

    limits = limits or Limits()
    if limits.max_batch_bytes and len(req.op_batch) > limits.max_batch_bytes:
        raise ResourceExhaustedError(
            f"op_batch of {len(req.op_batch)} bytes passes this server's limit of "
            f"{limits.max_batch_bytes} (max-batch-bytes); send the ops in smaller batches",
            "max_batch_bytes")
    return OpSource(iter_batch(req.op_batch, limits.max_batch_ops, limits.max_batch_depth),
                    partial(batch_op, data=array), _where_entry)  # no frame of its own


_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def iter_batch(raw: bytes, max_ops: int | None, max_depth: int) -> Iterator:
    """The entries of an op_batch (a JSON array), parsed one at a time; each nests at most
    `max_depth` deep (INVALID_ARGUMENT) and there are at most `max_ops` (RESOURCE_EXHAUSTED).
    Each entry is checked when its turn comes (`batch_op`)."""
    try:
        text = bytes(raw).decode()
    except UnicodeDecodeError as e:
        raise InvalidArgumentError(f"op_batch is not a JSON array of ops: {e}") from None
    pos = _SPACE.match(text).end()
    if text[pos:pos + 1] != "[":
        raise InvalidArgumentError("op_batch must be a JSON array of ops")
    if len(text) <= _WHOLE:
        return iter(_whole(text, max_ops, max_depth))
    return _entries(text, _SPACE.match(text, pos + 1).end(), max_ops, max_depth)


# An ordinary batch (a training step's ops) is parsed in one call to json's C parser: reading it
# entry by entry costs ~30x as much per op. Only a batch larger than this is read lazily, so a
# huge batch whose first op fails is never parsed whole.
_WHOLE = 256 << 10  # characters


def _whole(text: str, max_ops: int | None, max_depth: int) -> list:
    try:
        entries = json.loads(text)
    except RecursionError:  # json's C parser stops deep nesting itself, without recursing here
        raise InvalidArgumentError(
            f"op_batch nests deeper than {max_depth} levels") from None
    except ValueError as e:
        raise InvalidArgumentError(f"op_batch is not a JSON array of ops: {e}") from None
    if max_ops and len(entries) > max_ops:
        raise ResourceExhaustedError(
            f"op_batch has more than {max_ops} ops, this server's limit per request "
            "(max-batch-ops); send them in smaller batches", "max_batch_ops")
    for count, entry in enumerate(entries):
        if type(entry) is list and not _nested(entry):
            continue  # the usual entry: scalars and flat lists, 2 levels
        if _depth(entry, max_depth) > max_depth:
            raise InvalidArgumentError(
                f"op_batch entry {count} nests deeper than {max_depth} levels")
    return entries


_FLAT = frozenset((str, int, float, bool, type(None)))


def _nested(entry: list) -> bool:
    """Whether an entry holds more than scalars and lists (or dicts) of scalars."""
    for x in entry:  # loops, not all() over generators: this runs per entry of a batch
        kind = type(x)
        if kind is list or kind is dict:
            for y in (x if kind is list else x.values()):
                if type(y) not in _FLAT:
                    return True
        elif kind not in _FLAT:
            return True
    return False


def _entries(text: str, pos: int, max_ops: int | None, max_depth: int) -> Iterator:
    count = 0
    while text[pos:pos + 1] != "]" or count:
        count += 1
        if max_ops and count > max_ops:
            raise ResourceExhaustedError(
                f"op_batch has more than {max_ops} ops, this server's limit per request "
                "(max-batch-ops); send them in smaller batches", "max_batch_ops")
        try:
            entry, pos = _DECODER.raw_decode(text, pos)
        except RecursionError:
            raise InvalidArgumentError(
                f"op_batch entry {count - 1} nests deeper than {max_depth} levels") from None
        except ValueError as e:
            raise InvalidArgumentError(f"op_batch is not a JSON array of ops: {e}") from None
        if _depth(entry, max_depth) > max_depth:
            raise InvalidArgumentError(
                f"op_batch entry {count - 1} nests deeper than {max_depth} levels")
        yield entry
        pos = _SPACE.match(text, pos).end()
        sep = text[pos:pos + 1]
        if sep == "]":
            break
        if sep != ",":
            raise InvalidArgumentError(
                f"op_batch is not a JSON array of ops: expected ',' or ']' at char {pos}")
        pos = _SPACE.match(text, pos + 1).end()
    if _SPACE.match(text, pos + 1).end() != len(text):
        raise InvalidArgumentError("op_batch is not a JSON array of ops: extra data after it")


def _depth(value, limit: int) -> int:
    """How deep `value` nests (1 for a scalar), looking no deeper than `limit` + 1."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(item, list):
            todo.extend((x, depth + 1) for x in item)
        elif isinstance(item, dict):
            todo.extend((x, depth + 1) for x in item.values())
    return deepest


def _where_entry(entry) -> tuple[str, str]:
    name = entry[0] if isinstance(entry, list) and entry else None
    return (name if isinstance(name, str) else "?"), ""


def op_sources(req, limits: Limits | None = None) -> list[OpSource]:
    """Every op of a RunOps or Pipeline request, in the order they run."""
    max_ops = (limits or Limits()).max_batch_ops
    if max_ops and len(req.ops) > max_ops:
        raise ResourceExhaustedError(
            f"the request has {len(req.ops)} ops, more than this server's limit of {max_ops} "
            "per request (max-batch-ops); send them in smaller batches", "max_batch_ops")
    sources = [call_source(req.ops)] if req.ops else []
    if getattr(req, "op_batch", b""):
        sources.append(batch_source(req, limits))
    return sources


# -- requests --------------------------------------------------------------------------------
def run_ops_request(req: pb.RunOpsRequest, limits: Limits | None = None) -> Request:
    return Request(op_sources(req, limits), list(req.release))


def action_request(action) -> Request:
    """A call that is one action (Backward, Grad, Fetch, ListTensors, DescribeGraph)."""
    return Request(then=action)


def release_request(req: pb.ReleaseRequest) -> Request:
    return Request(release=list(req.ids))


def upload_request(first: pb.UploadRequest, array: np.ndarray) -> Request:
    """An Upload whose bytes arrived as `array` (see UploadAssembly)."""
    return Request(then=UploadAction(first.id, array, first.requires_grad))


def graph_action(req: pb.DescribeGraphRequest) -> GraphAction:
    return GraphAction(req.id, dict(req.names))


def pipeline_request(req: pb.PipelineRequest, limits: Limits | None = None,
                     answering: bool = False) -> Request:
    """A Pipeline request; `answering`: it arrived while a backward waits for a callback, so
    a `callback_result` may answer it (the servicer hands its results to the backward)."""
    return Request(op_sources(req, limits), list(req.release), then_action(req, answering))


def then_action(req: pb.PipelineRequest, answering: bool = False):
    """The action of a Pipeline request's `then` (None for none, and for a callback_result,
    which only a request that is `answering` may carry)."""
    kind = req.WhichOneof("then")
    if kind == "backward":
        return backward_action(req.backward)
    if kind == "grad":
        return grad_action(req.grad)
    if kind == "fetch":
        return fetch_action(req.fetch)
    if kind == "list":
        return list_action(req.list)
    if kind == "callback_result" and not answering:
        raise InvalidArgumentError("callback_result answers a callback, and no backward of "
                                   "this session waits for one")
    return None


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
def upload_messages(received: Iterator[bytes]):
    """An Upload stream as it arrives (serialized messages) -> (the first message parsed, or
    None when there is none; the later messages' chunk bytes)."""
    first = next(received, None)
    return (None if first is None else parse_upload(first)), (
        chunk_bytes(message) for message in received)


def parse_upload(message: bytes) -> pb.UploadRequest:
    try:
        return pb.UploadRequest.FromString(message)
    except DecodeError:
        raise InvalidArgumentError("malformed UploadRequest message") from None


def chunk_bytes(message: bytes):
    """A later Upload message's chunk. One that holds only its chunk (what the SDK sends) is
    read in place, a view into the received bytes; a protobuf parse would copy its megabyte
    twice (into the message, then out of it). Any other message is parsed in full, so every
    valid encoding is taken."""
    view = framing.sole_field(message, framing.UPLOAD_CHUNK)
    return view if view is not None else parse_upload(message).chunk


class UploadAssembly:
    """The tensor an Upload stream carries, put together as its messages arrive: `first` has
    the header (and maybe values or the first bytes in tensor.raw or chunk), `add` takes the
    later messages' chunk bytes. The bytes land in one preallocated buffer (allocated only
    after `check_room(nbytes)` passed) that becomes the array, and must add up to exactly its
    size."""

    def __init__(self, first: pb.UploadRequest, check_room: Callable[[int], None]) -> None:
        self.first = first
        self.dtype, self.shape, self.nbytes = tensor_header(first.tensor)
        self.values = len(first.tensor.values) > 0
        self.received = 0
        if self.values:
            if len(first.chunk):
                raise InvalidArgumentError("an upload with values takes no chunks")
            return
        check_room(self.nbytes)
        self.buf = np.empty(self.nbytes, dtype=np.uint8)
        self.add(first.tensor.raw)
        self.add(first.chunk)

    def add(self, piece) -> None:
        if self.values:
            raise InvalidArgumentError("an upload with values takes no chunks")
        if self.received + len(piece) > self.nbytes:
            raise InvalidArgumentError(
                f"upload of {self.first.id!r} sent more than the {self.nbytes} bytes that "
                f"shape {list(self.shape)} of {self.dtype.name} holds")
        self.buf[self.received:self.received + len(piece)] = np.frombuffer(piece,
                                                                           dtype=np.uint8)
        self.received += len(piece)

    def finish(self) -> np.ndarray:
        if self.values:
            return array_from_tensor_data(self.first.tensor)
        if self.received != self.nbytes:
            raise InvalidArgumentError(
                f"upload of {self.first.id!r} truncated: got {self.received} of "
                f"{self.nbytes} bytes")
        return array_from_raw(self.buf, self.dtype, self.shape)


def session_info(session: Session, runtime) -> pb.SessionInfo:
    held = dict(session.bytes_by_device)
    used, pool = backend(session.device).memory() or (0, 0)
    return pb.SessionInfo(
        session_id=session.id, device=session.device, owner=session.owner,
        tensor_count=len(session.tensors), bytes=sum(held.values()), bytes_by_device=held,
        idle_seconds=session.idle_seconds(), ttl_seconds=runtime.sessions.ttl or 0.0,
        device_memory_used=used, device_memory_pool=pool, devices=runtime.devices,
        instance_id=runtime.instance, applied_seq=session.applied_seq, epoch=session.epoch,
    )


def op_info(info: OpInfo) -> pb.OpInfo:
    return pb.OpInfo(
        name=info.name, kind=info.kind, min_inputs=info.min_inputs,
        max_inputs=info.max_inputs, differentiable=info.differentiable,
        max_outputs=info.max_outputs,
        attrs=[pb.AttrInfo(name=a.name, required=a.required, default_json=a.default_json)
               for a in info.attrs],
    )


# -- tensor data out ------------------------------------------------------------------------
def tensor_info(meta: TensorMeta) -> pb.TensorInfo:
    return pb.TensorInfo(
        id=meta.id, shape=meta.shape, strides=meta.strides, dtype=meta.dtype, device=meta.device,
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


def fill_whole(msg: pb.FetchResponse, tid: str, array: np.ndarray | None, enc: int) -> None:
    """`msg` (new) as fetch_chunks' one message with no chunk limit, built in place: a Pipeline
    reply adds one per fetched tensor (`item()` every step), without the chunk loop's copies."""
    msg.id, msg.last = tid, True
    if array is None:
        msg.none = True
        return
    tensor, flat = msg.tensor, array.reshape(-1)
    tensor.shape.extend(array.shape)
    tensor.dtype = from_numpy_dtype(array.dtype).name
    if enc == pb.ENCODING_RAW:
        tensor.raw = flat.view(np.uint8).tobytes()
    else:
        tensor.values.extend(flat.astype(np.float64).tolist())


def inline_bytes(fetched, enc: int) -> int:
    """How many element bytes an inline fetch of `fetched` would put into one message."""
    per = (lambda a: a.nbytes) if enc == pb.ENCODING_RAW else (lambda a: 8 * a.size)
    return sum(per(a) for _, a in fetched if a is not None)

