"""torch's `default_collate` and `default_convert`: how a DataLoader turns samples into
batches. New tensors (from numbers and numpy arrays) are made on the current session, or
in-process with none current; tensors are stacked where they live."""

from __future__ import annotations

import collections.abc
import copy
import re

import numpy as np
from gradserve.engine import AutogradMeta, stack

from ..._default import default_session

_STR_OR_OBJECT = re.compile(r"[SaUO]")
_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")


def _home():
    return default_session(None)


def _is_numpy(elem) -> bool:
    t = type(elem)
    return t.__module__ == "numpy" and t.__name__ not in ("str_", "string_", "bytes_")


def default_collate(batch):
    """Samples to a batch as torch's: tensors stacked along a new dim 0; numpy arrays and
    scalars to tensors (dtype kept); floats to float64 and ints to int64 tensors; strings
    kept as a list; dicts, named tuples and sequences collated field by field (a tuple
    becomes a list, as torch's).

    >>> default_collate([(1, 2.0), (3, 4.0)])
    [tensor([1, 3]), tensor([2., 4.], dtype=gradserve.float64)]
    """
    elem = batch[0]
    elem_type = type(elem)
    if isinstance(elem, AutogradMeta):
        return stack(list(batch), 0)
    if _is_numpy(elem):
        if isinstance(elem, np.ndarray) and _STR_OR_OBJECT.search(elem.dtype.str):
            raise TypeError(_ERR.format(elem.dtype))
        if isinstance(elem, (np.ndarray, np.generic)):
            return _home().tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(elem, float):
        return _home().tensor(batch, dtype="float64")
    if isinstance(elem, int):
        return _home().tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        fields = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(fields)
                return clone
            return elem_type(fields)
        except TypeError:  # a mapping type that cannot be built from a dict
            return fields
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return elem_type(*(default_collate(list(s)) for s in zip(*batch, strict=True)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if not all(len(e) == size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(s)) for s in zip(*batch, strict=True)]
        if isinstance(elem, tuple):
            return fields
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, field in enumerate(fields):
                    clone[i] = field
                return clone
            return elem_type(fields)
        except TypeError:
            return fields
    raise TypeError(_ERR.format(elem_type))


def default_convert(data):
    """One sample as torch's `default_convert` (the DataLoader's with batch_size=None):
    numpy arrays and scalars become tensors, containers are converted field by field.

    >>> default_convert({"x": np.zeros(2)})
    {'x': tensor([0., 0.], dtype=gradserve.float64)}
    """
    if isinstance(data, AutogradMeta):
        return data
    if _is_numpy(data):
        if isinstance(data, np.ndarray) and _STR_OR_OBJECT.search(data.dtype.str):
            return data
        return _home().tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        fields = {key: default_convert(data[key]) for key in data}
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update(fields)
                return clone
            return type(data)(fields)
        except TypeError:
            return fields
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        fields = [default_convert(d) for d in data]
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(fields):
                    clone[i] = d
                return clone
            return type(data)(fields)
        except TypeError:
            return fields
    return data
