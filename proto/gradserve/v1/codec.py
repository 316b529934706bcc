"""What both ends of the wire agree on beyond the .proto: constants, tensor bytes, op attrs and
the SDK's compact op batches. The client and the server import this one module.

Ops travel two ways. `OpCall` messages are for people (grpcurl, JSON): attrs in a Struct,
readable ids. The SDK sends `PipelineRequest.op_batch` instead: all of a request's ops as one
JSON array, one entry per op,

    [name, inputs, outputs, attrs, flags]

where an input is a tensor id (a string), a number or bool (a Python scalar operand) or
{"d": k} (the tensor data `op_data[k]` of the same request); `outputs` are the ids to bind,
`attrs` an object or null, and `flags` the sum of NO_GRAD and INPLACE. JSON keeps Python's
int/float distinction (1 vs 1.0), which promotion depends on; NaN and infinities are written
as NaN, Infinity and -Infinity. Building and parsing it costs about a microsecond per op,
where an OpCall costs ten: the batch is how remote training keeps up with in-process.
"""

from __future__ import annotations

import json
import math
import re
import secrets

import numpy as np
from google.protobuf import struct_pb2
from gradserve.engine import DType, InvalidArgumentError, as_dtype

from . import gradserve_pb2 as pb

ERROR_TRAILER = "gradserve-error-bin"  # trailing metadata key of a call's `Error`
MAX_MESSAGE_BYTES = 64 << 20  # each way, per message: what client and server channels allow
SESSION_ID_HEADER = "x-session-id"  # on every call: what session-affinity proxies hash on
# A session id, made by either end (`new_session_id`) and checked wherever one is taken (a
# proposed id, a state-dir file name): 22 characters of token_urlsafe(16), or more.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")
CHUNK_BYTES = 1 << 20  # bulk tensor bytes per Upload or Fetch message
FLOATS_ATTR = "__floats__"  # Struct attrs whose integral values must stay floats
NO_GRAD, INPLACE = 1, 2  # op_batch flags
# op_batch entries that name a captured step instead of an op (docs/WIRE.md, "Captured steps")
CAPTURE, REPLAY = "@capture", "@replay"
MAX_PLANS = 64  # captured steps one SDK session proxy keeps
MAX_PLAN_OPS = 4096  # entries in one captured step
DATA_OP = "tensor"  # the one op that takes tensor data (OpCall.data, op_data)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_DIMS = 64  # numpy's limit on an array's dims


def new_session_id() -> str:
    """A fresh, unguessable session id that `SESSION_ID` accepts."""
    return secrets.token_urlsafe(16)


# -- op batches ---------------------------------------------------------------------------------
def _json_default(value):
    if isinstance(value, DType):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    raise InvalidArgumentError(
        f"op attributes must be numbers, strings, bools, None or lists of them, not "
        f"{type(value).__name__}"
    )


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)
# The C encoder that `_ENCODER.encode` makes anew on every call, made once (the client packs
# each op's attrs for its running key: client/_replay.py). No cycle check: op batches are
# trees. The same bytes as `_ENCODER.encode`.
_C_ENCODE = None if json.encoder.c_make_encoder is None else json.encoder.c_make_encoder(
    None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False,
    True)


def pack_ops(ops: list) -> bytes:
    """The op_batch bytes for `ops` ([name, inputs, outputs, attrs, flags] each)."""
    if _C_ENCODE is None:
        return _ENCODER.encode(ops).encode()
    return "".join(_C_ENCODE(ops, 0)).encode()


def unpack_ops(raw: bytes) -> list:
    """The entries of an op_batch; each is checked when its turn comes (`batch_op`)."""
    try:
        ops = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"op_batch is not a JSON array of ops: {e}") from None
    if not isinstance(ops, list):
        raise InvalidArgumentError("op_batch must be a JSON array of ops")
    return ops


def batch_op(entry, data) -> tuple[str, tuple, tuple, dict, int]:
    """One op_batch entry as (name, inputs, outputs, attrs, flags): inputs hold tensor ids
    (str), scalars and host arrays (`data(k)` for {"d": k}); list attrs become tuples."""
    if not isinstance(entry, list) or len(entry) != 5:
        raise InvalidArgumentError("an op_batch entry is [name, inputs, outputs, attrs, flags]")
    name, inputs, outputs, attrs, flags = entry
    if not isinstance(name, str) or not isinstance(inputs, list) or not isinstance(
            outputs, list) or not (attrs is None or isinstance(attrs, dict)) or type(
            flags) is not int:
        raise InvalidArgumentError("an op_batch entry is [name, inputs, outputs, attrs, flags] "
                                   "with a string, two arrays, an object or null, and an int")
    for tid in outputs:
        if type(tid) is not str or not tid:
            raise InvalidArgumentError("output ids must be non-empty strings")
    for x in inputs:  # ids, floats and bools (most entries) are taken as they are
        kind = type(x)
        if kind is not str and kind is not float and kind is not bool:
            inputs = [_batch_input(name, x, i, data) for i, x in enumerate(inputs)]
            break
    return name, tuple(inputs), tuple(outputs), (_tuples(attrs) if attrs else {}), flags


def _batch_input(name: str, x, i: int, data):
    kind = type(x)
    if kind is str or kind is float or kind is bool:
        return x
    if kind is int:
        return check_int(x)
    if kind is dict and len(x) == 1 and type(x.get("d")) is int:
        if name != DATA_OP:
            raise InvalidArgumentError(f"only '{DATA_OP}' takes data, not {name!r}")
        return data(x["d"])
    raise InvalidArgumentError(
        f"input {i} must be a tensor id, a number, a bool or {{\"d\": k}} naming op_data[k]"
    )


def attrs_from_json(attrs: dict) -> dict:
    """Attrs read from JSON as the server takes them: lists become tuples (recursively)."""
    return _tuples(attrs)


def _tuples(attrs: dict) -> dict:
    for key, value in attrs.items():
        if type(value) is list:
            attrs[key] = _tuple(value)
    return attrs


def _tuple(value):
    return tuple(_tuple(v) if type(v) is list else v for v in value)


def check_int(x: int) -> int:
    if not INT64_MIN <= x <= INT64_MAX:
        raise InvalidArgumentError(f"Overflow when unpacking long: {x} does not fit int64")
    return x


# -- Struct attrs (OpCall) ----------------------------------------------------------------------
def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (DType, np.generic)):
        return _json_default(v)
    return v


def fill_attrs(struct: struct_pb2.Struct, attrs: dict) -> None:
    """Copy op attrs into a Struct; list integral floats in `__floats__` (Struct has only
    doubles, so the other end would otherwise turn `1.0` into the int `1`)."""
    clean, floats = {}, []
    for key, value in attrs.items():
        if isinstance(value, float) and value.is_integer():
            floats.append(key)
        clean[key] = _jsonable(value)
    if floats:
        clean[FLOATS_ATTR] = floats
    struct.update(clean)


def attrs_from_struct(struct: struct_pb2.Struct) -> dict:
    """A Struct as op attrs: lists become tuples, integral numbers ints, null None; the names
    in `__floats__` keep their floats."""
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


# -- tensor data --------------------------------------------------------------------------------
def little_endian(arr: np.ndarray) -> np.ndarray:
    """`arr` as a C-ordered little-endian array (no copy when it already is one)."""
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))


def tensor_data(arr: np.ndarray, dtype: DType, with_bytes: bool = True) -> pb.TensorData:
    """A TensorData of `arr` as raw little-endian bytes (or only its header)."""
    raw = little_endian(arr).tobytes() if with_bytes else b""
    return pb.TensorData(shape=arr.shape, dtype=dtype.name, raw=raw)


def tensor_header(data: pb.TensorData) -> tuple[DType, tuple[int, ...], int]:
    """dtype, shape and byte size that `data` declares; InvalidArgumentError if unusable."""
    dtype = as_dtype(data.dtype or "float32")
    shape = tuple(data.shape)  # a repeated int64: Python ints already
    if shape and min(shape) < 0:
        raise InvalidArgumentError(f"shape {list(shape)} has a negative dimension")
    # numpy's own limits, refused here rather than failing later: its dims, and every dim
    # (even beside a zero one) multiplied out in bytes within int64
    if len(shape) > MAX_DIMS or math.prod(n for n in shape if n) * dtype.itemsize > INT64_MAX:
        raise InvalidArgumentError(
            f"shape {list(shape)[:MAX_DIMS + 1]} is too large for a {dtype.name} tensor "
            f"(at most {MAX_DIMS} dims of at most {INT64_MAX} bytes in all)")
    return dtype, shape, math.prod(shape) * dtype.itemsize


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
    info = np.iinfo(dtype.np)
    bad = ~np.isfinite(values) | (values != np.round(values))
    # the largest int64 is not a double: 2**63 itself is the first value out of range
    bad |= (values < float(info.min)) | (values >= float(info.max) + 1.0)
    if bad.any():
        raise InvalidArgumentError(
            f"value {values[bad][0]!r} is not a valid {dtype.name} (integral and in range)"
        )
    return values.astype(dtype.np)


_LITTLE: dict[DType, np.dtype] = {}  # each dtype's little-endian numpy dtype, made once


def array_from_raw(raw, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """A host array from little-endian bytes; their length must match shape and dtype."""
    nbytes = math.prod(shape) * dtype.itemsize
    if len(raw) != nbytes:
        raise InvalidArgumentError(
            f"raw has {len(raw)} bytes but shape {list(shape)} of {dtype.name} needs {nbytes}"
        )
    if dtype.kind == 0:
        return (np.frombuffer(raw, dtype=np.uint8) != 0).reshape(shape)
    little = _LITTLE.get(dtype)
    if little is None:
        little = _LITTLE[dtype] = dtype.np.newbyteorder("<")
    arr = np.frombuffer(raw, dtype=little).reshape(shape)
    # bytes are read-only: copy once; a writable buffer (an upload's) is used in place
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr.astype(dtype.np, copy=False)
