"""Protobuf framing of bulk bytes, written by hand (unlike the generated modules beside it).

A 1 MiB tensor chunk put into a protobuf message is copied into the message, again when the
message is serialized, and again each time a parsed message's bytes field is read. For the
fields that carry bulk bytes (UploadRequest.chunk, FetchResponse.tensor.raw) the client and
the server write the field's key and length themselves and read chunk bytes in place. The
frames are ordinary protobuf: every parser reads them as the same messages.
"""

from __future__ import annotations

from . import gradserve_pb2 as pb


def field_key(message_type, name: str) -> bytes:
    """The key of a length-delimited field: its number and wire type 2."""
    return varint(message_type.DESCRIPTOR.fields_by_name[name].number << 3 | 2)


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def header(key: bytes, length: int) -> bytes:
    """What precedes `length` bytes of a length-delimited field on the wire."""
    return key + varint(length)


def sole_field(message: bytes, key: bytes) -> memoryview | None:
    """The payload of `message` as a view, when the message is exactly one field `key`;
    None when it is anything else (then parse it)."""
    if not message.startswith(key):
        return None
    length, shift = 0, 0
    for i in range(len(key), min(len(message), len(key) + 10)):
        byte = message[i]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            start = i + 1
            return memoryview(message)[start:] if start + length == len(message) else None
    return None


UPLOAD_CHUNK = field_key(pb.UploadRequest, "chunk")
FETCH_TENSOR = field_key(pb.FetchResponse, "tensor")
TENSOR_RAW = field_key(pb.TensorData, "raw")
