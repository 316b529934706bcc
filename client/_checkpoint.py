"""gs.save / gs.load: state dicts in safetensors files (no pickle).

Tensors (engine or remote, or numpy arrays) go into the file as safetensors entries, bit for
bit in their own dtype; remote tensors are fetched together, one wait per session. The rest
of the object (an optimizer state dict's dicts, lists, tuples, numbers, strings, None) is
kept in the file's metadata as JSON, with each tensor replaced by a reference to its entry,
and a CRC-32 of every entry lets `gs.load` tell a damaged file from a good one.

    >>> import gradserve as gs, gradserve.nn as nn
    >>> model = nn.Linear(2, 1)
    >>> gs.save(model.state_dict(), "/tmp/linear.safetensors")
    >>> sorted(gs.load("/tmp/linear.safetensors"))
    ['bias', 'weight']

A file another program wrote with safetensors (no gradserve metadata) loads as a flat dict.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import OrderedDict

import numpy as np
from gradserve.engine import GradserveError, TensorAPI

from ._default import default_session, values_of

_FORMAT = "gradserve.checkpoint/1"


class CheckpointError(GradserveError, ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a checkpoint."""


def save(obj, f) -> None:
    """Write a state dict (of a module, an optimizer, or any nesting of dicts, lists and
    tuples holding tensors, arrays and plain values) to the safetensors file `f`.

    >>> gs.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, "ck.st")
    """
    from safetensors.numpy import save_file  # loaded on first save: keeps imports light

    tensors: dict[str, object] = {}
    tree = _encode(obj, "", tensors)
    arrays = dict(zip(tensors, values_of(tensors.values()) if tensors else [], strict=True))
    # copy(order="C"), not ascontiguousarray: that one turns 0-d arrays into 1-d ones
    arrays = {k: v if v.flags.c_contiguous else v.copy(order="C") for k, v in arrays.items()}
    crc = {k: _crc(v) for k, v in arrays.items()}
    meta = {"format": _FORMAT, "tree": json.dumps(tree), "crc32": json.dumps(crc)}
    save_file(arrays, os.fspath(f), metadata=meta)


def load(f, session=None):
    """Read a file written by `save`; tensors are made on `session` (None: the default,
    see gradserve._default), other values come back as they were saved.

    >>> state = gs.load("ck.st", session=s)
    >>> model.load_state_dict(state["model"])
    """
    from safetensors import SafetensorError, safe_open  # loaded on first load (light imports)

    path = os.fspath(f)
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        with safe_open(path, framework="numpy") as handle:
            meta = handle.metadata() or {}
            arrays = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt "
                              f"safetensors file): {e}") from None
    if meta.get("format") == _FORMAT:
        _check_crc(path, arrays, meta)
    where = default_session(session)
    made = {k: where.tensor(a) for k, a in arrays.items()}
    if meta.get("format") != _FORMAT:
        return made
    try:
        return _decode(json.loads(meta["tree"]), made)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: the checkpoint's structure is damaged ({e})") from None


def _check_crc(path: str, arrays: dict, meta: dict) -> None:
    try:
        crc = json.loads(meta["crc32"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: the checkpoint's checksums are missing") from None
    if set(crc) != set(arrays):
        raise CheckpointError(f"{path}: the checkpoint's entries do not match its checksums")
    for key, array in arrays.items():
        if _crc(array) != crc[key]:
            raise CheckpointError(f"{path}: tensor {key!r} is corrupt (checksum mismatch)")


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


# -- the tree: JSON with tensors replaced by references -----------------------------------------
def _encode(obj, path: str, tensors: dict):
    if isinstance(obj, (TensorAPI, np.ndarray)):
        key = path or "tensor"
        while key in tensors:
            key += "_"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        for k in obj:
            if not (k is None or isinstance(k, (str, int, float))):
                raise TypeError(f"gs.save: dict keys must be strings or numbers, not "
                                f"{type(k).__name__}")
        return {"__dict__": [[k, _encode(v, f"{path}.{k}" if path else str(k), tensors)]
                             for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"gs.save can't store a {type(obj).__name__} (tensors, arrays, dicts, "
                    "lists, tuples, numbers, strings and None only; no pickle)")


def _decode(node, made: dict):
    if isinstance(node, list):
        return [_decode(v, made) for v in node]
    if isinstance(node, dict):
        if "__tensor__" in node:
            return made[node["__tensor__"]]
        if "__tuple__" in node:
            return tuple(_decode(v, made) for v in node["__tuple__"])
        if "__dict__" in node:
                    return OrderedDict((k, _decode(v, made)) for k, v in node["__dict__"])
        raise ValueError(f"unknown node {sorted(node)}")
    return node
