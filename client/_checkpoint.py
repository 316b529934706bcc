"""gs.save / gs.load: checkpoints as torch scripts call them, in safetensors files (no pickle).

`f` is a path or an open binary file (`open(p, "wb")`, `io.BytesIO()`), as for torch.save.
Tensors (engine or remote) and numpy arrays go into the file as safetensors entries, bit for
bit in their own dtype; remote tensors are fetched together, one wait per session. The rest
of the object (dicts, OrderedDicts, lists, tuples, numbers, strings, None, numpy scalars) is
kept in the file's metadata as JSON with each tensor replaced by a reference to its entry, so
each comes back with its type: a numpy array as a numpy array, a tuple as a tuple, a tensor
that required grad requiring grad. Anything else is refused: loading never runs code.

Every entry carries a CRC-32 of its dtype, shape and bytes, and the JSON a CRC-32 of its own,
so a flipped bit, an edited dtype, shape or value, a truncated file or a malformed header is
a `gs.CheckpointError`, never wrong values. A safetensors file from another program (no
gradserve metadata) is refused unless `strict=False`, which loads its entries as a flat dict.

    >>> import gradserve as gs, gradserve.nn as nn
    >>> model = nn.Linear(2, 1)
    >>> gs.save(model.state_dict(), "/tmp/linear.safetensors")
    >>> sorted(gs.load("/tmp/linear.safetensors"))
    ['bias', 'weight']
"""

from __future__ import annotations

import collections
import json
import os
import zlib

import numpy as np
from gradserve.engine import GradserveError, TensorAPI

from . import _safetensors
from ._default import default_session, values_of

_FORMAT = "gradserve.checkpoint/2"  # CRCs cover dtype, shape and bytes; typed tree nodes
_FORMAT_V1 = "gradserve.checkpoint/1"  # CRCs of the bytes only; dicts came back ordered
MAX_DEPTH = 200  # nesting of the saved object (a state dict has 4 levels)


class CheckpointError(GradserveError, ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a checkpoint."""


def save(obj, f, pickle_module=None, pickle_protocol=None, **_torch_options) -> None:
    """Write `obj` (a state dict of a module or an optimizer, or any nesting of dicts,
    lists and tuples holding tensors, numpy arrays, numbers, strings and None) to `f`, a path
    or a binary file object. torch.save's pickle options are accepted and mean nothing here.

    >>> gs.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, "ck.st")
    >>> buffer = io.BytesIO(); gs.save([np.arange(3), (1, "a")], buffer)
    """
    if pickle_module is not None:
        raise TypeError("gs.save writes safetensors, never pickle: pickle_module is not taken")
    tensors: dict[str, object] = {}
    tree = _encode(obj, "", tensors, 0, {})
    values = values_of(tensors.values()) if tensors else []
    # copy(order="C"), not ascontiguousarray: that one turns 0-d arrays into 1-d ones
    arrays = {k: v if v.flags.c_contiguous else v.copy(order="C")
              for k, v in zip(tensors, values, strict=True)}
    crc = {k: _crc(_safetensors.dtype_name(v), v.shape, v) for k, v in arrays.items()}
    meta = {"format": _FORMAT, "tree": json.dumps(tree), "crc32": json.dumps(crc)}
    meta["meta_crc32"] = str(_meta_crc(meta))
    if hasattr(f, "write"):
        _safetensors.write(f, arrays, meta)
        return
    with open(os.fspath(f), "wb") as out:
        _safetensors.write(out, arrays, meta)


def load(f, map_location=None, pickle_module=None, *, session=None, weights_only=None,
         mmap=None, strict: bool = True, **_torch_options):
    """Read what `save` wrote from `f` (a path or a binary file object); tensors are made on
    `session` (None: the default, see gradserve._default), everything else comes back as it
    was saved; `mmap=True` maps the file rather than reading it into memory first.
    `map_location` moves the tensors as torch's does: a device ("cpu", "cuda:0"),
    a dict from the device a tensor was saved from to another, or a function
    `(tensor, saved_device) -> tensor`. `weights_only` is accepted: nothing here can run
    code, whatever it says. `strict=False` also loads safetensors files without gradserve
    metadata, as a flat dict.

    >>> state = gs.load("ck.st", session=s)
    >>> model.load_state_dict(state["model"])
    """
    if pickle_module is not None:
        raise TypeError("gs.load reads safetensors, never pickle: pickle_module is not taken")
    name, data = _read_bytes(f, bool(mmap))
    try:
        arrays, meta = _safetensors.read(data)
    except _safetensors.FormatError as e:
        raise CheckpointError(f"{name} is not a readable checkpoint (truncated or corrupt "
                              f"safetensors file): {e}") from None
    form = meta.get("format")
    if form not in (_FORMAT, _FORMAT_V1):
        if strict:
            raise CheckpointError(
                f"{name} is a safetensors file without gradserve checkpoint metadata "
                "(written by another program, or its metadata was removed): its values "
                "cannot be checked; gs.load(..., strict=False) loads its entries as a "
                "flat dict")
        tree = {"__dict__": [[k, {"__tensor__": k}] for k in arrays]}
    else:
        _check_crc(name, arrays, meta, form)
        try:
            tree = json.loads(meta["tree"])
        except (KeyError, ValueError, RecursionError) as e:
            raise CheckpointError(f"{name}: the checkpoint's structure is damaged "
                                  f"({type(e).__name__}: {e})") from None
    made = _Maker(arrays, default_session(session), map_location)
    try:
        return _decode(tree, made, form == _FORMAT_V1, 0)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{name}: the checkpoint's structure is damaged "
                              f"({type(e).__name__}: {e})") from None


def _read_bytes(f, mapped: bool = False) -> tuple[str, bytes]:
    """The name and the whole contents of `f`; `mapped` (torch's `mmap=True`) maps a path
    instead of reading it, so a large file is not held in memory twice while loading."""
    if hasattr(f, "read"):
        data = f.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"gs.load needs a binary file, but reading {f!r} gave "
                            f"{type(data).__name__} (open it with 'rb')")
        return getattr(f, "name", None) or type(f).__name__, data
    path = os.fspath(f)
    try:
        with open(path, "rb") as handle:
            if mapped and os.fstat(handle.fileno()).st_size:
                import mmap  # only for gs.load(mmap=True)

                return path, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            return path, handle.read()
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint file at {path}") from None
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read: {e}") from None


def _meta_crc(meta: dict) -> int:
    return zlib.crc32(meta["tree"].encode(), zlib.crc32(meta["crc32"].encode()))


def _check_crc(name: str, arrays: dict, meta: dict, form: str) -> None:
    if form == _FORMAT and (not isinstance(meta.get("tree"), str) or not isinstance(
            meta.get("crc32"), str) or meta.get("meta_crc32") != str(_meta_crc(meta))):
        raise CheckpointError(f"{name}: the checkpoint's structure is damaged (its "
                              "description does not match its checksum)")
    try:
        crc = json.loads(meta["crc32"])
        if not isinstance(crc, dict):
            raise ValueError("not a map")
    except (KeyError, ValueError, RecursionError):
        raise CheckpointError(f"{name}: the checkpoint's checksums are missing") from None
    if set(crc) != set(arrays):
        raise CheckpointError(f"{name}: the checkpoint's entries do not match its checksums")
    for key, array in arrays.items():
        got = (_crc(_safetensors.dtype_name(array), array.shape, array) if form == _FORMAT
               else zlib.crc32(array.reshape(-1).view(np.uint8)))
        if got != crc[key]:
            raise CheckpointError(f"{name}: tensor {key!r} is corrupt (its checksum over "
                                  "dtype, shape and bytes does not match)")


def _crc(dtype: str, shape, array: np.ndarray) -> int:
    head = f"{dtype}{list(shape)}".encode()
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8),
                      zlib.crc32(head))


# -- the tree: JSON with tensors replaced by references -----------------------------------------
def _encode(obj, path: str, tensors: dict, depth: int, seen: dict):
    """`obj` as JSON, its tensors and arrays moved to `tensors` (one entry per object:
    `seen` maps id() to the entry, so tied weights stay one tensor, as torch keeps them)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"gs.save: the object nests deeper than {MAX_DEPTH} levels")
    if isinstance(obj, (TensorAPI, np.ndarray, np.generic)):
        if isinstance(obj, np.generic):
            key = _key_for(path, tensors)
            tensors[key] = np.asarray(obj)
            return {"__npscalar__": key}
        key = seen.get(id(obj))
        if key is None:
            key = seen[id(obj)] = _key_for(path, tensors)
            tensors[key] = obj
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": key}
        node = {"__tensor__": key, "device": str(obj.device)}
        if obj.requires_grad:
            node["rg"] = True
        return node
    if isinstance(obj, dict):
        for k in obj:
            if not (k is None or isinstance(k, (str, int, float))):
                raise TypeError(f"gs.save: dict keys must be strings or numbers, not "
                                f"{type(k).__name__}")
        kind = "__odict__" if isinstance(obj, collections.OrderedDict) else "__dict__"
        return {kind: [[k, _encode(v, f"{path}.{k}" if path else str(k), tensors, depth + 1,
                                   seen)]
                       for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors, depth + 1, seen)
                              for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors, depth + 1, seen)
                for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"gs.save can't store a {type(obj).__name__} (tensors, numpy arrays, "
                    "dicts, lists, tuples, numbers, strings and None only; no pickle)")


def _key_for(path: str, tensors: dict) -> str:
    key = path or "tensor"
    while key in tensors:
        key += "_"
    return key


class _Maker:
    """Tensors from the file's arrays, made where `load` puts them, each at most once."""

    def __init__(self, arrays: dict, where, map_location) -> None:
        self.arrays, self.where, self.map_location = arrays, where, map_location
        self.made: dict = {}

    def array(self, key: str) -> np.ndarray:
        if key not in self.made:  # a copy: the file's bytes are not kept alive
            self.made[key] = np.array(self.arrays[key])
        return self.made[key]

    def tensor(self, key: str, device: str | None, requires_grad: bool):
        if key in self.made:
            return self.made[key]
        t = self.where.tensor(self.arrays[key])
        t = _relocate(t, device, self.map_location)
        if requires_grad:
            t.requires_grad_(True)
        self.made[key] = t
        return t


def _relocate(t, saved: str | None, map_location):
    if map_location is None:
        return t
    if callable(map_location) and not isinstance(map_location, (str, dict)):
        out = map_location(t, saved or str(t.device))
        return t if out is None else out
    if isinstance(map_location, dict):
        target = map_location.get(saved or str(t.device))
        if target is None:
            return t
    else:
        target = map_location
    return t if str(t.device) == str(target) else t.to(str(target))


def _decode(node, made: _Maker, v1: bool, depth: int):
    if depth > MAX_DEPTH:
        raise ValueError(f"it nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, list):
        return [_decode(v, made, v1, depth + 1) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return made.tensor(node["__tensor__"], node.get("device"), bool(node.get("rg")))
    if "__ndarray__" in node:
        return made.array(node["__ndarray__"])
    if "__npscalar__" in node:
        return np.array(made.arrays[node["__npscalar__"]])[()]
    if "__tuple__" in node:
        return tuple(_decode(v, made, v1, depth + 1) for v in node["__tuple__"])
    for kind, cls in (("__dict__", collections.OrderedDict if v1 else dict),
                      ("__odict__", collections.OrderedDict)):
        if kind in node:
            return cls((_key(k), _decode(v, made, v1, depth + 1)) for k, v in node[kind])
    raise ValueError(f"unknown node {sorted(node)}")


def _key(k):
    if not (k is None or isinstance(k, (str, int, float))):
        raise TypeError(f"a dict key of type {type(k).__name__}")
    return k
