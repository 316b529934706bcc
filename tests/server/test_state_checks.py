"""A damaged state file is never restored: each tamper case (a flipped bit, an edited dtype,
removed metadata, truncation, a header length of 2**63, deep nesting) is moved aside and the
session is recorded lost with the reason, a clear NOT_FOUND naming the session."""

from __future__ import annotations

import json
import struct
import time

import pytest
from gradserve import engine
from gradserve.server._errors import SessionNotFoundError
from gradserve.server._sessions import Session
from gradserve.server._state import StateDir

SID = "t" * 22


def _written(tmp_path) -> tuple[StateDir, bytes]:
    s = Session(SID, "alice", "cpu", time.monotonic)
    s.tensors["w"] = engine.arange(64.0)
    s.tensors["n"] = engine.arange(8, dtype=engine.int32)
    state = StateDir(tmp_path, "writer")
    state.save(s)
    return state, (tmp_path / f"{SID}.safetensors").read_bytes()


def _header(data: bytes) -> tuple[dict, int]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), n


def _with_header(data: bytes, header: dict) -> bytes:
    _, n = _header(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n:]


def _flip_data(data: bytes) -> bytes:
    i = len(data) - 100
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def _edit_dtype(data: bytes) -> bytes:
    header, _ = _header(data)
    (name,) = [k for k, e in header.items() if k != "__metadata__" and e["dtype"] == "I32"]
    header[name]["dtype"] = "F32"  # same width: only a checksum over the dtype sees it
    return _with_header(data, header)


def _drop_metadata(data: bytes) -> bytes:
    header, _ = _header(data)
    del header["__metadata__"]
    return _with_header(data, header)


def _edit_description(data: bytes) -> bytes:
    header, _ = _header(data)
    meta = json.loads(header["__metadata__"]["gradserve"])
    meta["owner"] = "mallory"
    header["__metadata__"]["gradserve"] = json.dumps(meta)
    return _with_header(data, header)


def _deep(data: bytes) -> bytes:
    text = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    return struct.pack("<Q", len(text)) + text


CASES = {
    "bit flip": _flip_data,
    "dtype edit": _edit_dtype,
    "metadata removed": _drop_metadata,
    "description edited": _edit_description,
    "truncated": lambda d: d[:-40],
    "header length 2**63": lambda d: struct.pack("<Q", 2**63) + d[8:],
    "deep nesting": _deep,
    "garbage": lambda d: b"not a state file",
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_state_file_is_set_aside_and_the_session_is_lost(tmp_path, case):
    _, data = _written(tmp_path)
    path = tmp_path / f"{SID}.safetensors"
    path.write_bytes(CASES[case](data))
    reader = StateDir(tmp_path, "reader")
    stored = reader.status(SID)
    if stored.state == "moved":  # only the entries are damaged: found when it is read
        with pytest.raises(SessionNotFoundError) as info:
            with reader.claim(SID):
                pytest.fail("a damaged state file was restored")
        assert info.value.reason == "lost" and SID in str(info.value)
        assert "failed its checks" in str(info.value)
        stored = reader.status(SID)
    assert stored.state == "lost", case
    assert "failed its checks" in stored.details and "moved aside" in stored.details
    assert not path.exists() and (tmp_path / f"{SID}.damaged").exists()
    again = StateDir(tmp_path, "another")  # every later look says the same, clearly
    assert again.status(SID).state == "lost"
    with again.claim(SID) as claimed:
        assert claimed is None


def test_an_intact_state_file_passes_its_checks(tmp_path):
    state, _ = _written(tmp_path)
    assert state.status(SID).state == "moved"
    with state.claim(SID) as (arrays, meta):
        assert arrays and set(meta["crc32"]) == set(arrays)


def test_old_damaged_files_are_swept_with_the_rest(tmp_path):
    _, data = _written(tmp_path)
    (tmp_path / f"{SID}.safetensors").write_bytes(data[:-40])
    reader = StateDir(tmp_path, "reader")
    assert reader.status(SID).state == "lost"
    assert sorted(reader.sweep(older_than=-100)) == [f"{SID}.damaged", f"{SID}.lost"]


def test_random_damage_is_lost_or_changes_nothing(tmp_path):
    """Seeded mutations anywhere in a state file: the session is recorded lost, or (a flip
    in the header's padding) restored exactly; never another exception, never other values."""
    import numpy as np

    _, good = _written(tmp_path / "src")
    rng = np.random.default_rng(14)
    lost = 0
    for i in range(120):
        data = bytearray(good)
        at = int(rng.integers(len(data)))
        if i % 2:
            data[at] ^= 1 << int(rng.integers(8))
        else:
            del data[at:at + int(rng.integers(1, 9))]
        where = tmp_path / str(i)
        where.mkdir()
        (where / f"{SID}.safetensors").write_bytes(bytes(data))
        state = StateDir(where, "reader")
        if state.status(SID).state == "lost":
            lost += 1
            continue
        try:
            with state.claim(SID) as (arrays, _meta):
                want = np.frombuffer(good, np.uint8)  # the intact file's entries
                assert all(a.tobytes() in want.tobytes() for a in arrays.values())
        except SessionNotFoundError as e:
            assert e.reason == "lost" and SID in str(e)
            lost += 1
    assert lost >= 110, lost
