"""Strides without data (`engine/core/layout.py` and the view ops' shape rules) against numpy's
actual views and, when installed, torch's: the client decides from them alone whether an op
aliases its input, so they must be exact."""

from __future__ import annotations

import random

import numpy as np
import pytest
from gradserve import engine as E
from gradserve.engine import OPS, Meta
from gradserve.engine.core.layout import (
    column_major,
    column_majors,
    contiguous,
    is_contiguous,
    view_strides,
)


def _factorizations(rng: random.Random, total: int, count: int = 12) -> set[tuple[int, ...]]:
    out = set()
    for _ in range(count):
        dims, left = [], total
        while left > 1 and len(dims) < 4:
            d = rng.choice([k for k in range(1, left + 1) if left % k == 0])
            dims.append(d)
            left //= d
        if left > 1:
            dims.append(left)
        rng.shuffle(dims)
        if rng.random() < 0.3:
            dims.insert(rng.randrange(len(dims) + 1), 1)
        out.add(tuple(dims))
    return out


def _strided_views(seed: int, n: int):
    """Views of numpy arrays made by slicing with steps and permuting: (view, base)."""
    rng = random.Random(seed)
    for _ in range(n):
        shape = tuple(rng.randint(1, 4) for _ in range(rng.randint(1, 4)))
        base = np.arange(np.prod([2 * s for s in shape]), dtype=np.float32).reshape(
            [2 * s for s in shape])
        view = base[tuple(slice(rng.randint(0, 1), None, rng.choice([1, 1, 2])) for _ in shape)]
        view = view[tuple(slice(0, s) for s in shape)]
        perm = list(range(len(shape)))
        rng.shuffle(perm)
        yield view.transpose(perm), base, rng


def test_view_strides_agree_with_numpy_reshape():
    checked = 0
    for view, base, rng in _strided_views(0, 400):
        strides = tuple(s // view.itemsize for s in view.strides)
        for new in _factorizations(rng, view.size):
            decision = view_strides(view.shape, strides, new)
            out = view.reshape(new)
            assert (decision is not None) == np.shares_memory(out, base), (view.shape, new)
            if decision is not None:
                got = tuple(s // out.itemsize for s in out.strides)
                assert all(g == d for g, d, n in zip(got, decision, new, strict=True) if n != 1)
            checked += 1
    assert checked > 2000


def test_view_strides_agree_with_torch():
    import torch
    for view, _, rng in _strided_views(1, 200):
        t = torch.from_numpy(np.ascontiguousarray(view.base if view.base is not None else view))
        tv = torch.as_strided(t, view.shape, [s // 4 for s in view.strides],
                              (view.__array_interface__["data"][0]
                               - t.numpy().__array_interface__["data"][0]) // 4)
        for new in _factorizations(rng, view.size):
            mine = view_strides(tuple(tv.shape), tuple(tv.stride()), new)
            try:
                theirs = tuple(tv.view(new).stride())
            except RuntimeError:
                theirs = None
            assert mine == theirs, (tuple(tv.shape), tv.stride(), new)


def test_contiguity():
    assert contiguous((2, 3, 4)) == (12, 4, 1) and contiguous((2, 0, 3)) == (3, 3, 1)
    assert is_contiguous((2, 3), (3, 1)) and not is_contiguous((3, 2), (1, 3))
    assert is_contiguous((2, 1, 3), (3, 99, 1)) and is_contiguous((0, 5), (7, 7))


# Every view op in the registry: (op, a non-contiguous input, attrs).
def _input():
    return E.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4)).permute(2, 0, 1)[1:]


VIEW_CASES = {
    "reshape": [{"shape": (3, 2, 3)}, {"shape": (3, 6)}],
    "view": [{"shape": (3, 2, 3, 1)}],
    "flatten": [{"start_dim": 1, "end_dim": 2}, {"start_dim": 0, "end_dim": 1}],
    "t": None,
    "permute": [{"dims": (2, 0, 1)}],
    "transpose": [{"dim0": 0, "dim1": 2}],
    "squeeze": [{"dim": None}],
    "unsqueeze": [{"dim": 1}, {"dim": 3}],
    "expand": [{"shape": (2, 3, 2, 3)}],
    "getitem": [{"key": (("slice", None, None, 2), ("int", 1), ("none",))},
                {"key": (("ellipsis",), ("slice", 1, None, None))}],
    "detach": [{}],
    "data": [{}],
    "split": [{"split_size": 1, "dim": 0}, {"split_size": 2, "dim": 2}],
    "split_with_sizes": [{"sizes": (1, 1), "dim": 1}, {"sizes": (2, 0, 1), "dim": 0}],
    "unbind": [{"dim": 0}, {"dim": 2}],
    "narrow": [{"dim": 2, "start": 1, "length": 2}, {"dim": 0, "start": -2, "length": 1}],
    "diagonal": [{"offset": 0, "dim1": 0, "dim2": 2}, {"offset": 1, "dim1": 2, "dim2": 0}],
    # a stale view's ops again (AsStridedBackward0's), as one view op
    "restride": [{"steps": (("transpose", {"dim0": 0, "dim1": 2}, 0),
                            ("getitem", {"key": (("int", 1),)}, 0))},
                 {"steps": (("unbind", {"dim": 2}, 1), ("unsqueeze", {"dim": 0}, 0))}],
}


def test_every_view_op_has_a_layout_case():
    views = {name for name, op in OPS.items() if op.view} | {"data"}
    assert views <= set(VIEW_CASES), views - set(VIEW_CASES)


@pytest.mark.parametrize("name", sorted(VIEW_CASES))
def test_view_op_strides_are_numpys(name):
    cases = VIEW_CASES[name]
    if cases is None:  # t: 2-D only
        src = E.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)).t()
        cases, inputs = [{}], src
    else:
        inputs = _input()
    for attrs in cases:
        metas = OPS[name].infer(inputs, **attrs)
        outs = inputs._op(name, inputs, **attrs)
        if isinstance(metas, Meta):
            metas, outs = (metas,), (outs,)
        for meta, out in zip(metas, outs, strict=True):
            _check_layout(name, attrs, meta, out, inputs)


def _check_layout(name, attrs, meta, out, inputs):
    if meta.strides is None:  # a copy: fresh and contiguous, sharing nothing
        assert out.is_contiguous() and not np.shares_memory(out._data, inputs._data)
    else:  # numpy's strides; size-1 dims may carry any (torch's are what the rule says)
        got = tuple(st // out._data.itemsize for st in out._data.strides)
        assert out.stride() == meta.strides, (name, attrs)
        assert all(g == m for g, m, n in zip(got, meta.strides, out.shape, strict=True)
                   if n != 1), (name, attrs, got)
        assert out.numel() == 0 or np.shares_memory(out._data, inputs._data)


@pytest.mark.parametrize("shape", [(0, 0), (0, 1), (1, 0), (1, 1), (1, 3), (3, 1), (2, 3),
                                   (4,), (1,), (), (1, 1, 1), (2, 1, 1)])
def test_column_majors_of_contiguous_tensors_skip_their_strides_exactly(shape):
    # contiguous tensors (strides None) take a shortcut; it must agree with the rule on their
    # computed strides, and with torch's layout of the transpose where one exists
    t = E.zeros(*shape)
    assert t._strides is None
    assert column_majors((t, 2.0), (0, 1)) == (column_major(shape, contiguous(shape)), False)
    if len(shape) == 2:
        tt = E.zeros(shape[1], shape[0]).t()
        assert tt._strides is not None or tt.shape[0] * tt.shape[1] <= 1
        assert column_majors((tt,), (0,)) == (column_major(tt.shape, tt.stride()),)
        assert column_majors((tt,), (0,)) == (True,)
