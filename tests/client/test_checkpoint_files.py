"""gs.save / gs.load as torch scripts call them (API.md §7), against torch.save / torch.load
of the same objects: paths, open files and BytesIO; nested containers, numbers, strings,
numpy arrays and scalars come back with their types; and every malformed file (a flipped
bit, an edited dtype, removed metadata, truncation, a header length of 2**63, deep nesting)
is a gs.CheckpointError."""

from __future__ import annotations

import collections
import io
import json
import struct

import gradserve as gs
import numpy as np
import pytest
import torch
from gradserve import engine


def _objects(lib):
    """The same object built from torch or gradserve tensors."""
    t = lib.tensor
    return {
        "weights": collections.OrderedDict(w=t([[1.5, -2.0]]), b=t([0.25], dtype=lib.float64)),
        "plain": {"ints": t([1, 2, 3]), "flags": t([True, False]), 7: "seven", 2.5: None},
        "nested": [t(3.0), (t([1.0]), [1, 2.5, "x", None, True]), {"deep": [[t(0)]]}],
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "f32 array": np.array([0.1, np.nan], dtype=np.float32),
        "np scalars": (np.float64(1.25), np.int32(-3), np.bool_(True)),
        "numbers": [0, -(2**62), 1e-300, float("inf"), "text", b"" == b"", None],
        "tuple": (1, (2, (3,))),
        "grad": t([1.0, 2.0], requires_grad=True),
    }


def _same(ours, theirs, where="obj"):
    """Same types (gradserve tensors for torch tensors) and the same values."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, engine.Tensor), where
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), where
        assert ours.requires_grad == theirs.requires_grad, where
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy(), where)
        return
    assert type(ours) is type(theirs), (where, type(ours), type(theirs))
    if isinstance(theirs, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, where
        np.testing.assert_array_equal(ours, theirs, where)
    elif isinstance(theirs, dict):
        assert list(ours) == list(theirs), where
        for k in theirs:
            _same(ours[k], theirs[k], f"{where}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float) and np.isnan(theirs):
        assert np.isnan(ours), where
    else:
        assert ours == theirs, where


@pytest.mark.parametrize("how", ["path", "mmap", "open file", "BytesIO"])
def test_round_trips_as_torch_does(tmp_path, how):
    theirs_buf = io.BytesIO()
    torch.save(_objects(torch), theirs_buf)
    theirs_buf.seek(0)
    theirs = torch.load(theirs_buf, weights_only=False)
    path = tmp_path / "ck.pt"
    if how == "path":
        gs.save(_objects(engine), path)
        ours = gs.load(path, session=engine)
    elif how == "mmap":
        gs.save(_objects(engine), path)
        ours = gs.load(path, mmap=True, session=engine)
    elif how == "open file":
        with open(path, "wb") as f:
            gs.save(_objects(engine), f)
        with open(path, "rb") as f:
            ours = gs.load(f, map_location="cpu", weights_only=True, session=engine)
    else:
        buf = io.BytesIO()
        gs.save(_objects(engine), buf)
        buf.seek(0)
        ours = gs.load(buf, weights_only=False, session=engine)
    _same(ours, theirs)


def test_a_tensor_saved_twice_loads_as_one_as_in_torch():
    def both(lib, w):
        buf = io.BytesIO()
        (torch.save if lib is torch else gs.save)({"enc": w, "dec": w, "other": w * 1}, buf)
        buf.seek(0)
        return (torch.load(buf) if lib is torch else gs.load(buf, session=engine))

    theirs = both(torch, torch.ones(3))
    ours = both(engine, engine.ones(3))
    assert (ours["enc"] is ours["dec"]) == (theirs["enc"] is theirs["dec"]) is True
    assert ours["other"] is not ours["enc"]
    ours["enc"].add_(1)  # one tensor, as torch's tied weights
    assert ours["dec"].tolist() == [2.0, 2.0, 2.0]


def test_map_location_forms_are_taken(tmp_path):
    gs.save({"w": engine.ones(2)}, tmp_path / "m.pt")
    for where in ("cpu", {"cpu": "cpu"}, lambda storage, loc: storage):
        out = gs.load(tmp_path / "m.pt", map_location=where, session=engine)
        assert str(out["w"].device) == "cpu" and out["w"].tolist() == [1.0, 1.0]


def test_what_torch_would_pickle_is_refused_clearly(tmp_path):
    for bad in (object(), {1, 2}, b"bytes", {"k": lambda: 0}, {(1, 2): 3}):
        with pytest.raises(TypeError, match="no pickle|dict keys"):
            gs.save(bad, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="never pickle"):
        gs.load(tmp_path / "x.pt", pickle_module=object())
    deep: list = []
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        gs.save(deep, tmp_path / "x.pt")


def test_a_file_without_gradserve_metadata_needs_strict_false(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": np.ones((2, 2), np.float32)}, str(path))
    with pytest.raises(gs.CheckpointError, match="strict=False"):
        gs.load(path)
    out = gs.load(path, strict=False, session=engine)
    assert list(out) == ["w"] and out["w"].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_files_written_here_read_with_the_safetensors_library(tmp_path):
    from safetensors.numpy import load_file

    gs.save({"w": engine.arange(4.0), "a": np.eye(2)}, tmp_path / "x.safetensors")
    arrays = load_file(str(tmp_path / "x.safetensors"))
    assert arrays["w"].tolist() == [0.0, 1.0, 2.0, 3.0] and arrays["a"].tolist() == np.eye(
        2).tolist()


# -- tamper cases ---------------------------------------------------------------------------------
def _good() -> bytes:
    buf = io.BytesIO()
    gs.save({"w": engine.arange(16.0), "n": engine.arange(4, dtype=engine.int32),
             "meta": {"epoch": 3}}, buf)
    return buf.getvalue()


def _header(data: bytes) -> tuple[dict, int]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), n


def _with_header(data: bytes, header: dict) -> bytes:
    _, n = _header(data)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + n:]


def _edit(data: bytes, change) -> bytes:
    header, _ = _header(data)
    change(header)
    return _with_header(data, header)


def _set_dtype(h):
    h["n"]["dtype"] = "F32"  # I32 -> F32: same width, so only the checksum sees it


def _set_shape(h):
    h["w"]["shape"] = [4, 4]  # same bytes, another shape


def _drop_meta(h):
    del h["__metadata__"]


def _bad_tree(h):
    h["__metadata__"]["tree"] = '{"__dict__": [["w", {"__tensor__": "nope"}]]}'


def _deep_tree(h):
    h["__metadata__"]["tree"] = "[" * 100_000 + "]" * 100_000


def _resealed(change):
    """`change`, then the description's own checksum made to match again (what a tamperer
    who knows the format does): the checks behind it must still refuse the file."""
    def edit(h):
        import zlib

        change(h)
        m = h["__metadata__"]
        m["meta_crc32"] = str(zlib.crc32(m["tree"].encode(), zlib.crc32(m["crc32"].encode())))
    return edit


TAMPERED = {
    "bit flip": lambda d: d[:-3] + bytes([d[-3] ^ 0x10]) + d[-2:],
    "dtype edit": lambda d: _edit(d, _set_dtype),
    "shape edit": lambda d: _edit(d, _set_shape),
    "metadata removed": lambda d: _edit(d, _drop_meta),
    "tree damaged": lambda d: _edit(d, _bad_tree),
    "tree nested deep": lambda d: _edit(d, _deep_tree),
    "tree damaged, resealed": lambda d: _edit(d, _resealed(_bad_tree)),
    "tree nested deep, resealed": lambda d: _edit(d, _resealed(_deep_tree)),
    "truncated": lambda d: d[:-9],
    "bytes added": lambda d: d + b"\0" * 8,
    "header length 2**63": lambda d: struct.pack("<Q", 2**63) + d[8:],
    "header nested deep": lambda d: (lambda t: struct.pack("<Q", len(t)) + t)(
        b"[" * 100_000 + b"]" * 100_000),
    "header not JSON": lambda d: struct.pack("<Q", 4) + b"\xff\xfe{}",
    "garbage": lambda d: b"not a checkpoint at all",
    "empty": lambda d: b"",
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_every_malformed_file_is_a_checkpoint_error(tmp_path, case):
    path = tmp_path / "bad.pt"
    path.write_bytes(TAMPERED[case](_good()))
    with pytest.raises(gs.CheckpointError, match="bad.pt"):
        gs.load(path, session=engine)
    with pytest.raises(gs.CheckpointError):
        gs.load(io.BytesIO(path.read_bytes()), session=engine)


def test_the_untampered_file_loads():
    out = gs.load(io.BytesIO(_good()), session=engine)
    assert out["n"].tolist() == [0, 1, 2, 3] and out["meta"] == {"epoch": 3}


def test_files_of_the_first_format_still_load(tmp_path):
    import zlib

    from safetensors.numpy import save_file

    w = np.arange(4, dtype=np.float32)
    tree = {"__dict__": [["w", {"__tensor__": "w"}], ["epoch", 2]]}
    meta = {"format": "gradserve.checkpoint/1", "tree": json.dumps(tree),
            "crc32": json.dumps({"w": zlib.crc32(w.view(np.uint8))})}
    save_file({"w": w}, str(tmp_path / "v1.safetensors"), metadata=meta)
    out = gs.load(tmp_path / "v1.safetensors", session=engine)
    assert type(out) is collections.OrderedDict  # what the first format gave
    assert out["w"].tolist() == [0.0, 1.0, 2.0, 3.0] and out["epoch"] == 2
    data = (tmp_path / "v1.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(gs.CheckpointError, match="corrupt"):
        gs.load(tmp_path / "bad.safetensors", session=engine)


def test_random_damage_is_a_checkpoint_error_or_changes_nothing():
    """Seeded mutations anywhere in a file (bit flips, bytes cut or added): gs.load raises
    gs.CheckpointError, or (a flip in the header's padding or a JSON-equivalent edit) loads
    exactly the saved values; never another exception, never other values."""
    good = _good()
    want = gs.load(io.BytesIO(good), session=engine)
    rng = np.random.default_rng(14)
    outcomes = collections.Counter()
    for _ in range(400):
        data = bytearray(good)
        kind = rng.integers(3)
        at = int(rng.integers(len(data)))
        if kind == 0:
            data[at] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            del data[at:at + int(rng.integers(1, 9))]
        else:
            data[at:at] = bytes(rng.integers(256, size=int(rng.integers(1, 9)), dtype=np.uint8))
        try:
            got = gs.load(io.BytesIO(bytes(data)), session=engine)
        except gs.CheckpointError:
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        assert got["meta"] == want["meta"]
        for k in ("w", "n"):
            assert got[k].dtype == want[k].dtype and got[k].tolist() == want[k].tolist()
    assert outcomes["refused"] > 350, outcomes
