"""The safetensors format, written and read here with every field checked.

A file is an 8-byte little-endian header length N, N bytes of JSON (`{"__metadata__": {str:
str}, name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}`, padded
with spaces), then the entries' bytes, back to back. The library's reader trusts too much
of that for a file that came from elsewhere (a header length of 2**63, nesting deep enough
to overflow a parser, a dtype edited to another of the same width), so `read` checks each
field before anything is allocated, and a failure is one `FormatError` saying what is wrong.
Files written here load with the `safetensors` library, and its files load here.
"""

from __future__ import annotations

import json
import math

import numpy as np

MAX_HEADER = 100 << 20  # the safetensors library's own limit on the header's size

# safetensors dtype names <-> numpy dtypes (little-endian)
DTYPES = {"BOOL": np.dtype(np.bool_), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
          "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "U32": np.dtype("<u4"),
          "I32": np.dtype("<i4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
          "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8")}


class FormatError(ValueError):
    """A file that is not well-formed safetensors; the message says which part is wrong."""


def dtype_name(array: np.ndarray) -> str:
    """The safetensors name of `array`'s dtype."""
    dt = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    for name, known in DTYPES.items():
        if dt == known:
            return name
    raise TypeError(f"safetensors cannot hold arrays of dtype {array.dtype}")


def write(f, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write `arrays` (C-contiguous) and `metadata` to the binary file object `f`."""
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, a in arrays.items():
        header[name] = {"dtype": dtype_name(a), "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the entries start 8-byte aligned
    f.write(len(text).to_bytes(8, "little"))
    f.write(text)
    for a in arrays.values():
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        if a.nbytes:
            f.write(memoryview(np.ascontiguousarray(a).reshape(-1)).cast("B"))


def read(data) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a whole file's bytes (`bytes`, `bytearray`, `memoryview`); the
    arrays are views of `data`, in the order of their offsets."""
    view = memoryview(data).cast("B")
    if len(view) < 8:
        raise FormatError(f"{len(view)} bytes is too short for a safetensors file (it starts "
                          "with an 8-byte header length)")
    n = int.from_bytes(view[:8], "little")
    if n > len(view) - 8 or n > MAX_HEADER:
        raise FormatError(f"its header length {n} is past the end of its {len(view)} bytes"
                          if n > len(view) - 8 else
                          f"its header length {n} is over the {MAX_HEADER}-byte limit")
    header = _parse_header(bytes(view[8:8 + n]))
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise FormatError("its __metadata__ is not a map of strings to strings")
    body = view[8 + n:]
    entries = sorted(((_entry(name, e, len(body)), name) for name, e in header.items()),
                     key=lambda x: x[0][2])
    arrays, end = {}, 0
    for (dtype, shape, begin, stop), name in entries:
        if begin != end:
            raise FormatError(f"entry {name!r} starts at byte {begin}, where the entry before "
                              f"it ends at {end} (entries must follow each other)")
        arrays[name] = np.frombuffer(body[begin:stop], dtype=dtype).reshape(shape)
        end = stop
    if end != len(body):
        raise FormatError(f"its entries hold {end} bytes but {len(body)} follow the header "
                          "(truncated, or bytes were added)")
    return arrays, meta


def _parse_header(raw: bytes) -> dict:
    # json's parser checks its own recursion: nesting deeper than Python's limit is a
    # RecursionError, caught here, never a crash
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise FormatError("its header is not a JSON object")
    return header


def _entry(name: str, e, body: int) -> tuple:
    if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
        raise FormatError(f"entry {name!r} is not {{dtype, shape, data_offsets}}")
    dtype = DTYPES.get(e["dtype"]) if isinstance(e["dtype"], str) else None
    if dtype is None:
        raise FormatError(f"entry {name!r} has dtype {e['dtype']!r}, which is not one this "
                          f"reader knows ({', '.join(DTYPES)})")
    shape, offsets = e["shape"], e["data_offsets"]
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise FormatError(f"entry {name!r} has shape {shape!r}, not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= body):
        raise FormatError(f"entry {name!r} has data_offsets {offsets!r}, outside the "
                          f"{body} bytes of data")
    if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
        raise FormatError(f"entry {name!r}: {offsets[1] - offsets[0]} bytes cannot hold a "
                          f"{e['dtype']} tensor of shape {shape}")
    return dtype, tuple(shape), offsets[0], offsets[1]
