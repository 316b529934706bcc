"""`x[key] = value` and the views of a written tensor as torch 2.13 shows them, on engine
tensors and on a live session (cpu and the GPU kind): the source's ViewBackward0 and
ExpandBackward0 when it broadcasts (torch's copy_to), a whole key writing into x itself, the
basic items of a key with index tensors making a view for index_put_, and, after any write,
the stale views' AsStridedBackward0 over the base's new history. torch is the oracle for
every graph, value and gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .test_copyslices_graph import _graph, _same

X = np.arange(12.0).reshape(3, 4) / 10 - 0.4
W = np.linspace(-1.0, 1.5, 12).reshape(3, 4)
E = Ellipsis

# (key, value from w): value broadcasts, has leading ones, or fits as it is
SETS = {
    "broadcast_row": (slice(1, 3), lambda w: w[0]),
    "broadcast_column_of_one": (slice(1, 3), lambda w: w[0, :1]),
    "leading_one_no_expand": (1, lambda w: w[:1]),
    "leading_ones_and_expand": (slice(1, 3), lambda w: w[:1, :1]),
    "same_shape": (slice(1, 3), lambda w: w[:2]),
    "whole_slice_writes_x": (slice(None), lambda w: w * 2),
    "whole_stop_past_end": (slice(0, 100), lambda w: w[0]),
    "negative_start_is_a_slice": (slice(-3, None), lambda w: w * 2),
    "ellipsis_writes_x": (E, lambda w: w[0]),
    "none_key": (None, lambda w: w * 1),
    "tuple_whole": ((slice(None), slice(0, 4)), lambda w: w[1]),
    "tuple_select_none": ((0, None), lambda w: w[1]),
    "tuple_ellipsis_select": ((E, 0), lambda w: w[0, :3]),
    "number": ((0, slice(1, 3)), lambda w: 2.5),
    "index_on_a_select": ((0, [1, 2]), lambda w: w[0, :2]),
    "index_value_leading_ones": ((0, [1, 2]), lambda w: w[:1, :2]),
    "index_list": (([0, 1],), lambda w: w[:1]),
    "index_after_slice": ((slice(None), [1, 2]), lambda w: w[:1, :2]),
    "index_after_narrow": ((slice(1, 3), [0, 3]), lambda w: w[0, :1]),
}


def _on_gpu(M) -> bool:
    return M.tensor(0.0).device != "cpu"


def _set(M, key, value):
    x = M.tensor(X, requires_grad=True)
    w = M.tensor(W, requires_grad=True)
    a = x * 1.5
    a[key] = value(w)
    graph = _graph(a.grad_fn)
    (a * a).sum().backward()
    grads = tuple(None if t.grad is None else np.asarray(t.grad.tolist()) for t in (x, w))
    return graph, np.asarray(a.detach().tolist()), grads


@pytest.mark.parametrize("name", sorted(SETS))
def test_setitem_gives_torchs_graph_values_and_grads(M, name):
    key, value = SETS[name]
    _same(_set(M, key, value), _set(torch, key, value))


def test_a_zero_dim_source_fills_on_the_cpu_and_expands_elsewhere(M):
    """torch's copy_to fills from a 0-dim cpu tensor (FillBackward3 inside CopySlices) and
    views and expands any other (a CUDA one): the same rule on both devices."""
    ours = _set(M, slice(1, 3), lambda w: w[0, 1])
    if _on_gpu(M):  # torch's CUDA path, written out and run by torch on the cpu
        theirs = _set(torch, slice(1, 3), lambda w: w[0, 1].view(()).expand(2, 4))
    else:
        theirs = _set(torch, slice(1, 3), lambda w: w[0, 1])
    _same(ours, theirs)


@pytest.mark.parametrize("value", [np.ones(3), np.ones((2, 2, 4)), np.ones((3, 2, 4))])
def test_a_source_that_does_not_broadcast_raises_torchs_error(M, value):
    def run(M):
        a = M.tensor(X).clone()
        try:
            a[1:3] = M.tensor(value)
        except RuntimeError as e:
            return str(e).replace("torch.", "gradserve.")
        return None

    assert run(M) == run(torch) is not None


# views taken before a write; each is read after it
VIEWS = {
    "slice": lambda a: a[1:],
    "slice_of_slice": lambda a: a[1:][0],
    "transpose": lambda a: a.t(),
    "expand": lambda a: a[0].expand(2, 4),
    "written_view": lambda a: a[1:],
    "diagonal": lambda a: a.diagonal(),
    "unsqueeze_narrow": lambda a: a.unsqueeze(0).narrow(2, 1, 2),
}
WRITES = {
    "through_a_view": lambda a, v: a[1:].mul_(2),
    "on_the_base": lambda a, v: a.mul_(2),
    "through_the_view": lambda a, v: v.mul_(2) if v.shape == (2, 4) and v.stride() == (4, 1)
    else a[0].add_(1),
    "setitem": lambda a, v: a.__setitem__((slice(None), 1), 0.5),
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_stale_views_grad_fn_is_torchs_as_strided(M, view, write):
    def run(M):
        x = M.tensor(X, requires_grad=True)
        a = x * 1.0
        v = VIEWS[view](a)
        WRITES[write](a, v)
        graph = _graph(v.grad_fn)
        later = _graph(VIEWS[view](a).grad_fn)  # a view made after the write: its own node
        weights = M.tensor(np.arange(v.numel(), dtype=np.float64).reshape(v.shape))
        ((v * weights) ** 2).sum().backward()
        return graph, later, np.asarray(x.grad.tolist())

    ours, theirs = run(M), run(torch)
    assert theirs[0][0] == "AsStridedBackward0"
    assert ours[:2] == theirs[:2]
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-12, atol=1e-12)


def test_as_strided_second_order_gradients_are_torchs(M):
    def grads(M):
        x = M.tensor(X, requires_grad=True)
        a = x * 1.0
        v = a[0].expand(2, 4)
        a[1:].mul_(x[:2])
        gx, = M.autograd.grad((v * v * v).sum(), x, create_graph=True)
        hx, = M.autograd.grad((gx * gx).sum(), x)
        return [np.asarray(t.tolist()) for t in (gx, hx)]

    for g, tg in zip(grads(M), grads(torch), strict=True):
        np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-12)


def test_names_and_reprs_are_torchs(M):
    def names(M):
        x = M.tensor(X, requires_grad=True)
        a = x * 1.0
        v = a[0]
        v.mul_(2)
        acc = x.clone().grad_fn.next_functions[0][0]
        return (a.grad_fn.name(), type(a.grad_fn).__name__, v.grad_fn.name(),
                type(v.grad_fn).__name__, acc.name(), type(acc).__name__,
                repr(a).split("grad_fn=")[1], repr(v).split("grad_fn=")[1])

    assert names(M) == names(torch)


def test_the_version_error_names_copyslices_and_asstrided_as_torch(M):
    def errors(M):
        out = []
        x = M.tensor(X, requires_grad=True)
        for build in (lambda a: (a * a, lambda: a.__setitem__(0, 1.0)),
                      lambda a: ((lambda v: v * v)(a[1:]), lambda: a.__setitem__(0, 1.0))):
            a = x * 1.0
            y, write = build(a)
            write()
            if y.grad_fn.next_functions[0][0] is None:
                continue
            try:
                y.sum().backward()
                M.tensor(0.0).item()
                out.append(None)
            except RuntimeError as e:
                out.append(str(e).replace("torch.", "gradserve."))
        return out

    ours, theirs = errors(M), errors(torch)
    assert ours == theirs
    assert "which is output 0 of torch::autograd::CopySlices, is at version 1" in theirs[0]
    assert "which is output 0 of AsStrided, is at version 1" in theirs[1]
    assert theirs[1].endswith(" Hint: enable anomaly detection to find the operation that "
                              "failed to compute its gradient, with "
                              "gradserve.autograd.set_detect_anomaly(True, check_nan=False).")


@pytest.mark.parametrize("key", [slice(None), 0, (0,), E, None])
def test_keys_of_a_zero_dim_tensor_read_and_write_as_torchs(M, key):
    def run(L):
        out = []
        for op in (lambda t: t[key], lambda t: t.__setitem__(key, 3.0)):
            t = L.tensor(1.5)
            try:
                op(t)
                out.append(t.tolist())
            except IndexError as e:
                out.append(str(e))
        return out

    assert run(M) == run(torch)
