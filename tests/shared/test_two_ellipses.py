"""Keys with more than one `...`, read and written as torch 2.13 does: each `...` skips the
dims the key's other items leave over, so a second one moves what follows past them (torch's
applySlicing). Values, shapes, grad_fn graphs, gradients and errors against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

E = Ellipsis
X = np.arange(24.0).reshape(2, 3, 4) / 10 - 1


def _keys(M):
    i = M.tensor([0, 1])
    m = M.tensor([True, False, True])
    return {
        "two": (E, E), "three": (E, E, E), "int_first": (0, E, E), "int_between": (E, 0, E),
        "full_slice_past": (E, E, slice(None)), "ints_around": (0, E, 0, E),
        "index_between": (E, i, E), "index_first": (i, E, E), "list_between": (E, [0, 1], E),
        "slice_between": (E, slice(0, 1), E), "two_ints_between": (E, 0, 0, E),
        "nones": (None, E, None, E), "none_between": (E, None, E),
        # errors
        "index_past": (E, E, i), "mask_between": (E, m, E), "none_past": (E, E, None),
        "none_past_three": (E, E, E, None),
    }


NAMES = sorted(_keys(torch))


def _graph(fn):
    if fn is None:
        return None
    return type(fn).__name__, tuple(_graph(nxt) for nxt, _ in fn.next_functions)


def _read(M, name):
    x = M.tensor(X, requires_grad=True)
    try:
        y = (x * 1.0)[_keys(M)[name]]
    except IndexError as e:
        return "raises", str(e)
    (y * y).sum().backward()
    return _graph(y.grad_fn), tuple(y.shape), np.asarray(y.tolist()), np.asarray(x.grad.tolist())


def _write(M, name):
    x = M.tensor(X, requires_grad=True)
    a = x * 1.0
    try:
        a[_keys(M)[name]] = -2.0
    except IndexError as e:
        return "raises", str(e)
    (a * a).sum().backward()
    return _graph(a.grad_fn), np.asarray(a.tolist()), np.asarray(x.grad.tolist())


def _same(ours, theirs):
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs, strict=True):
        if isinstance(t, np.ndarray):
            np.testing.assert_allclose(o, t, rtol=1e-12, atol=1e-12)
        else:
            assert o == t


@pytest.mark.parametrize("name", NAMES)
def test_a_key_with_two_ellipses_reads_as_torchs(M, name):
    _same(_read(M, name), _read(torch, name))


@pytest.mark.parametrize("name", NAMES)
def test_a_key_with_two_ellipses_writes_as_torchs(M, name):
    _same(_write(M, name), _write(torch, name))


@pytest.mark.parametrize("key", [(E, E, 0), (E, 0, E, 0), (0, E, E, 0)])
def test_an_int_past_the_dims_is_an_index_error(M, key):
    """torch reads the size of a dim past the end there (0 in practice): its IndexError
    names the int and the key position; only that much is checked."""
    for L in (M, torch):
        with pytest.raises(IndexError, match=rf"^index 0 is out of bounds for dimension "
                                             rf"{len(key) - 1} with size"):
            L.tensor(X)[key]


def test_one_ellipsis_counts_the_keys_items_in_its_error(M):
    def error(L, key):
        with pytest.raises(IndexError) as e:
            L.tensor(X)[key]
        return str(e.value)

    for key in [(E, 5), (None, E, 5), (0, E, 7)]:
        assert error(M, key) == error(torch, key)
