"""Backward kernels that run as one op where no graph is recorded (mm's factor gradients,
log_softmax's gradient): the same bits and layouts as the graph of small ops torch records
under create_graph, and torch's node names there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gradserve import engine as E
from gradserve.engine.core.errors import InvalidArgumentError
from gradserve.nn import functional as F


def _grads(make, create_graph: bool):
    leaves, out = make()
    out.backward(E.ones_like(out), create_graph=create_graph)
    return [(t.grad.detach().numpy().copy(), t.grad.stride()) for t in leaves]


def _linear(dtype):
    rng = np.random.default_rng(0)
    xa, wa, ba = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)

    def make():
        x = E.tensor(xa, dtype=dtype, requires_grad=True)
        w = E.tensor(wa, dtype=dtype, requires_grad=True)
        b = E.tensor(ba, dtype=dtype, requires_grad=True)
        return (x, w, b), F.linear(x, w, b).relu().log_softmax(1)

    return make


def _products():
    rng = np.random.default_rng(1)
    aa, ba, ca = rng.standard_normal((4, 6)), rng.standard_normal((4, 2)), rng.standard_normal(
        (2, 3))

    def make():
        a = E.tensor(aa, requires_grad=True)  # a.t(): a column-major factor
        b = E.tensor(ba, requires_grad=True)
        c = E.tensor(ca, requires_grad=True)
        return (a, b, c), a.t().mm(b).mm(c) * 3.0

    return make


@pytest.mark.parametrize("make", [_linear(E.float32), _linear(E.float64), _products()],
                         ids=["linear-f32", "linear-f64", "mm-chain"])
def test_one_op_gradients_have_the_bits_and_layouts_of_the_recorded_graph(make):
    fused, recorded = _grads(make, False), _grads(make, True)
    for (g1, s1), (g2, s2) in zip(fused, recorded, strict=True):
        assert s1 == s2
        assert g1.dtype == g2.dtype and g1.tobytes() == g2.tobytes()


def test_gradient_layouts_follow_torch():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((4, 2))
    strides = []
    for lib in (E, torch):
        x, y = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        x.t().mm(y).sum().backward()
        strides.append((x.grad.stride(), y.grad.stride()))
    assert strides[0] == strides[1]


def test_log_softmax_double_backward_is_torchs_node_and_values():
    rng = np.random.default_rng(3)
    xa, wa = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    names, values = [], []
    for lib in (E, torch):
        x = lib.tensor(xa, requires_grad=True)
        y = (x * x).log_softmax(1)
        g, = lib.autograd.grad((y * lib.tensor(wa)).sum(), x, create_graph=True)
        node = g.grad_fn
        while type(node).__name__ != "LogSoftmaxBackwardDataBackward0":
            node = next(n for n, _ in node.next_functions if n is not None)
        names.append(type(node).__name__)
        (g * g).sum().backward()
        values.append(x.grad.detach().numpy())
    assert names[0] == names[1]
    np.testing.assert_allclose(values[0], values[1], rtol=1e-12, atol=1e-12)


def _addmm(lib, bias_shape, beta, alpha, needs):
    rng = np.random.default_rng(4)
    values = rng.standard_normal(bias_shape), rng.standard_normal((5, 6)), \
        rng.standard_normal((3, 6))

    def make():
        i, a, b = (lib.tensor(v, requires_grad=n) for v, n in zip(values, needs, strict=True))
        out = i.addmm(a, b.t(), beta=beta, alpha=alpha)  # b.t(): a column-major factor
        return tuple(t for t in (i, a, b) if t.requires_grad), out * 2.0

    return make


@pytest.mark.parametrize("bias_shape", [(3,), (1, 3), (5, 3), ()])
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 1), (1, 2.0)])
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False),
                                   (False, True, False), (True, False, True)])
def test_addmm_gradients_unrecorded_are_the_recorded_graphs_and_torchs(bias_shape, beta,
                                                                        alpha, needs):
    make = _addmm(E, bias_shape, beta, alpha, needs)
    fused, recorded = _grads(make, False), _grads(make, True)
    leaves, out = _addmm(torch, bias_shape, beta, alpha, needs)()
    out.backward(torch.ones_like(out))
    for (g1, s1), (g2, s2), t in zip(fused, recorded, leaves, strict=True):
        assert s1 == s2 == t.grad.stride()
        assert g1.dtype == g2.dtype and g1.tobytes() == g2.tobytes()
        np.testing.assert_allclose(g1, t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_factor_gradient_ops_check_their_shapes():
    g, b = E.zeros(2, 3), E.zeros(4, 5)
    with pytest.raises(InvalidArgumentError, match="cannot be multiplied"):
        g._op("mm_mat1_grad", g, b)
    with pytest.raises(InvalidArgumentError, match="cannot be multiplied"):
        g._op("mm_mat2_grad", g, b, column_major=True)
    out = g._op("mm_mat2_grad", g, E.ones(2, 4), column_major=True)
    assert out.shape == (4, 3) and out.stride() == (1, 4) and not out.is_contiguous()


def _bits(a) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "broadcast-input"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threshold_backward_has_torchs_bits_and_strides_in_every_layout(layout, dtype):
    """relu's gradient kernel takes a faster path for same-shape contiguous operands: each
    path gives torch's bits (+0 where masked, whatever g holds)."""
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((6, 5)).astype(dtype)
    xa[0, :3] = 0.0
    ga = rng.standard_normal((6, 5)).astype(dtype)
    ga[1:3, 1:3] = [[np.inf, -np.inf], [np.nan, -0.0]]
    if layout == "broadcast-input":
        xa = xa[:1]
    out = []
    for lib, make in ((E, E.tensor), (torch, torch.tensor)):
        x = make(xa).relu()
        g = make(ga.T.copy()).t() if layout == "transposed" else make(ga)
        if layout == "broadcast-input":
            x = x.expand(6, 5)
        out.append(lib.ops.aten.threshold_backward(g, x, 0.0) if lib is torch
                   else g._op("threshold_backward", g, x))
    ours, theirs = out
    assert _bits(ours.numpy()) == _bits(theirs.numpy())
    if layout != "transposed":  # there the engine keeps g's layout, torch makes it contiguous
        assert ours.stride() == theirs.stride()


@pytest.mark.parametrize("loss", ["nll_loss", "cross_entropy"])
def test_class_losses_name_torchs_out_of_range_target(loss):
    """The training step's fast path leaves an out-of-range target to the general path,
    which raises torch's error."""
    x, t = np.zeros((3, 4), np.float32), np.array([0, 4, 1])
    fn = getattr(F, loss)
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        getattr(torch.nn.functional, loss)(torch.tensor(x), torch.tensor(t))
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        fn(E.tensor(x), E.tensor(t))
