"""Elementwise results are laid out as torch's TensorIterator lays them out (its fast setups,
else the dims ordered by the operands' strides), so `stride()`, `is_contiguous()` and whether
a later `reshape` aliases, copies or records which node agree with torch: on engine tensors
(whose arrays hold that layout) and in a live session (whose client knows it without data)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch  # the oracle

from .test_grad_fn_types import _graph
from .test_matmul_graphs import _agree

BASE = np.arange(1, 2 * 3 * 4 * 5 + 1, dtype=np.float64).reshape(2, 3, 4, 5) / 7.0

# operands of shape-compatible layouts: a function of a tensor factory
LAYOUTS = {
    "contiguous": lambda m: m(BASE),
    "permuted": lambda m: m(BASE).permute(2, 3, 0, 1).permute(2, 3, 0, 1),
    "swapped": lambda m: m(BASE.transpose(0, 2, 1, 3).copy()).transpose(1, 2),
    "channels_last": lambda m: m(BASE.transpose(0, 2, 3, 1).copy()).permute(0, 3, 1, 2),
    "reversed": lambda m: m(BASE.transpose(3, 2, 1, 0).copy()).permute(3, 2, 1, 0),
    "strided": lambda m: m(np.concatenate([BASE, BASE], 3))[..., ::2],
    "strided_permuted": lambda m: m(np.concatenate([BASE, BASE], 1).transpose(1, 3, 0, 2)
                                    .copy()).permute(2, 0, 3, 1)[:, ::2],
}

OPS = {
    "exp": lambda M, x, y: x.exp(),
    "neg": lambda M, x, y: -x,
    "abs_relu": lambda M, x, y: (x - 3).abs().relu(),
    "sigmoid": lambda M, x, y: x.sigmoid(),
    "times_number": lambda M, x, y: x * 2,
    "number_minus": lambda M, x, y: 2 - x,
    "pow_number": lambda M, x, y: x ** 2,
    "add": lambda M, x, y: x + y,
    "mul": lambda M, x, y: x * y,
    "div": lambda M, x, y: x / y,
    "sub_broadcast": lambda M, x, y: x - y[0],
    "broadcast_add": lambda M, x, y: x[:, :1] + y,
    "broadcast_both": lambda M, x, y: x[:, :, :1] * y[:1],
    "maximum": lambda M, x, y: M.maximum(x, y),
    "lt": lambda M, x, y: x < y,
    "where": lambda M, x, y: M.where(x > 4, x, y),
    "where_number": lambda M, x, y: M.where(y > 4, x, 0.0),
}


def _factory(M):
    return torch.tensor if M is torch else M.tensor


def _same_layout(M, ours, theirs):
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert tuple(ours.stride()) == tuple(theirs.stride())
    assert ours.is_contiguous() == theirs.is_contiguous()
    np.testing.assert_allclose(np.asarray(ours.tolist()).reshape(ours.shape),
                               theirs.detach().numpy(), rtol=1e-12, atol=0)
    data = getattr(ours, "_data", None)
    if data is not None:  # an engine tensor: its array is laid out as it says
        got = [s // data.itemsize for s in data.strides]
        assert all(n == 1 or g == s for n, g, s in zip(data.shape, got, ours.stride(),
                                                      strict=True))
    else:  # a proxy: the server's tensor has the strides its client worked out
        (info,) = ours._session._list([ours._id])
        assert tuple(info.strides) == tuple(theirs.stride())


@pytest.mark.parametrize("op", sorted(OPS))
def test_elementwise_results_have_torchs_strides(M, op):
    for lx, ly in itertools.product(sorted(LAYOUTS), repeat=2):
        ours = OPS[op](M, LAYOUTS[lx](_factory(M)), LAYOUTS[ly](_factory(M)))
        theirs = OPS[op](torch, LAYOUTS[lx](_factory(torch)), LAYOUTS[ly](_factory(torch)))
        _same_layout(M, ours, theirs)


def _random_operand(rng, shape):
    """A tensor-making function for `shape`: some dims broadcast (size 1) or missing, laid
    out in a random order of dims, maybe every other element of one dim."""
    shape = [1 if rng.random() < 0.2 else n for n in shape][int(rng.integers(0, 2)):]
    order = rng.permutation(len(shape))
    step = int(rng.integers(1, 3))
    sliced = int(rng.integers(0, len(shape))) if shape else 0
    full = [shape[d] * (step if d == sliced else 1) for d in order]
    data = rng.standard_normal(full)

    def make(m):
        t = m(data).permute(*np.argsort(order).tolist()) if len(shape) > 1 else m(data)
        if shape and step > 1:
            t = t[(slice(None),) * sliced + (slice(None, None, step),)]
        return t
    return make


def test_random_layouts_and_broadcasts_match_torch(M):
    rng = np.random.default_rng(16)
    for _ in range(60):
        shape = [int(n) for n in rng.integers(1, 4, int(rng.integers(1, 5)))]
        makers = [_random_operand(rng, shape) for _ in range(3)]
        for kind in ("unary", "binary", "where"):
            def run(m, makers=makers, kind=kind):
                a, b, c = (f(_factory(m)) for f in makers)
                if kind == "unary":
                    return a.tanh()
                if kind == "binary":
                    return a * b
                return m.where(c > 0, a, b)
            _same_layout(M, run(M), run(torch))


# a later reshape or view of an elementwise result: a view, a copy or an alias as in torch
RESHAPES = {
    "t_times_2_flat": lambda M, x: (x.t() * 2).reshape(-1),
    "t_times_2_same": lambda M, x: (x.t() * 2).reshape(3, 2),
    "t_plus_x_flat": lambda M, x: (x.t() + x.t().exp()).reshape(6),
    "permuted_exp_flat": lambda M, x: x.reshape(1, 2, 3).permute(2, 0, 1).exp().reshape(3, 2),
    "sliced_mul": lambda M, x: (x[:, ::2] * x[:, 1:2]).reshape(-1),
    "compared_where": lambda M, x: M.where(x.t() > 0, x.t(), 0.0).reshape(6),
    "unsqueezed_add": lambda M, x: (x.t().unsqueeze(0) + 1).reshape(3, 2),
    "broadcast_row_flat": lambda M, x: (x.t() * x.t()[:1]).reshape(-1),
    "broadcast_column_flat": lambda M, x: (x.t().sigmoid() + x.t()[:, :1]).flatten(),
    "float32_promoted_flat": lambda M, x: (x.t().float() * x.t()).reshape(-1),
    "where_broadcast_flat": lambda M, x: M.where(x.t() > 0, x.t(), x.t()[:1]).reshape(6),
    "clone_flat": lambda M, x: x.t().clone().reshape(2, 3),
    "contiguous_view": lambda M, x: (x.t() - 1).contiguous().view(6),
    "expanded_exp_flat": lambda M, x: x[:1].expand(2, 3).exp().reshape(-1),
    "view_as_of_product": lambda M, x: (x.t() * 2).t().view_as(x),
}
X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


@pytest.mark.parametrize("name", sorted(RESHAPES))
def test_reshape_of_an_elementwise_result_records_torchs_graph(M, name):
    ours_in, theirs_in = M.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    ours, theirs = RESHAPES[name](M, ours_in), RESHAPES[name](torch, theirs_in)
    assert tuple(ours.stride()) == tuple(theirs.stride())
    _agree(ours, theirs, [ours_in], [theirs_in])


def test_view_of_a_transposed_product_is_torchs(M):
    x, tx = M.tensor(X), torch.tensor(X)
    y, ty = x.t() * 2, tx.t() * 2
    assert y.is_contiguous() is ty.is_contiguous() is False
    assert tuple(y.t().view(6).tolist()) == tuple(ty.t().view(6).tolist())
    with pytest.raises(RuntimeError) as theirs:
        ty.view(6)
    with pytest.raises(RuntimeError, match=re.escape(str(theirs.value))):
        y.view(6)


def test_a_reshape_alias_shares_the_version_counter_as_torchs(M):
    x, tx = M.tensor(X), torch.tensor(X)
    y, ty = x.t() * 2, tx.t() * 2
    z, tz = y.reshape(3, 2, 1), ty.reshape(3, 2, 1)
    y.add_(1)
    ty.add_(1)
    assert z._version == tz._version == 1
    assert np.asarray(z.tolist()).tolist() == tz.tolist()


def test_a_contiguous_view_of_another_dtype_is_promoted_as_torchs(M):
    """An integer operand whose strides a view op gave (contiguous ones) cast to float."""
    def results(m):
        x = m.arange(24).reshape(2, 3, 4)[1]
        return [x * m.ones(3, 4), x.exp(), m.where(x > 3, x, m.ones(3, 4)), x / 2]

    for ours, theirs in zip(results(M), results(torch), strict=True):
        _same_layout(M, ours, theirs)


# copies: clone() keeps the layout (preserve_format) where contiguous() does not
COPIES = {
    "clone": lambda M, x: x.clone(),
    "contiguous": lambda M, x: x.contiguous(),
    "double_of_float": lambda M, x: x.float().double(),
    "clone_then_flat": lambda M, x: x.clone().reshape(-1),
    "contiguous_then_view": lambda M, x: x.contiguous().view(-1),
}


@pytest.mark.parametrize("name", sorted(COPIES))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_copies_keep_or_drop_the_layout_as_torchs(M, name, layout):
    ours_in = LAYOUTS[layout](_factory(M)).requires_grad_(True)
    theirs_in = LAYOUTS[layout](_factory(torch)).requires_grad_(True)
    ours, theirs = COPIES[name](M, ours_in), COPIES[name](torch, theirs_in)
    _same_layout(M, ours, theirs)
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)


def test_graphs_of_contiguous_operands_stay_torchs(M):
    x = M.tensor(X, requires_grad=True)
    tx = torch.tensor(X, requires_grad=True)
    assert _graph((x * 2).reshape(6).grad_fn) == _graph((tx * 2).reshape(6).grad_fn)


def _F(M):
    return torch.nn.functional if M is torch else M.nn.functional


# every elementwise op of the surface, over random layouts (`_random_operand`)
SURFACE = {
    # unary, float results
    "tanh": lambda M, a, b, c: a.tanh(),
    "log1p": lambda M, a, b, c: a.abs().log1p(),
    "sqrt": lambda M, a, b, c: a.sqrt(),
    "rsqrt": lambda M, a, b, c: a.rsqrt(),
    "reciprocal": lambda M, a, b, c: a.reciprocal(),
    "erf": lambda M, a, b, c: a.erf(),
    "exp2": lambda M, a, b, c: a.exp2(),
    "sinc": lambda M, a, b, c: a.sinc(),
    "gelu": lambda M, a, b, c: _F(M).gelu(a),
    "silu": lambda M, a, b, c: _F(M).silu(a),
    "softplus": lambda M, a, b, c: _F(M).softplus(a),
    "elu": lambda M, a, b, c: _F(M).elu(a),
    "leaky_relu": lambda M, a, b, c: _F(M).leaky_relu(a),
    "hardtanh": lambda M, a, b, c: _F(M).hardtanh(a),
    "relu6": lambda M, a, b, c: _F(M).relu6(a),
    "hardsigmoid": lambda M, a, b, c: _F(M).hardsigmoid(a),
    "hardswish": lambda M, a, b, c: _F(M).hardswish(a),
    "logsigmoid": lambda M, a, b, c: _F(M).logsigmoid(a),
    "mish": lambda M, a, b, c: _F(M).mish(a),
    "selu": lambda M, a, b, c: _F(M).selu(a),
    "celu": lambda M, a, b, c: _F(M).celu(a),
    "softshrink": lambda M, a, b, c: _F(M).softshrink(a),
    "hardshrink": lambda M, a, b, c: _F(M).hardshrink(a),
    "threshold": lambda M, a, b, c: _F(M).threshold(a, 0.1, 2.0),
    "nan_to_num": lambda M, a, b, c: a.nan_to_num(),
    "logit": lambda M, a, b, c: a.sigmoid().logit(),
    "to_float32": lambda M, a, b, c: a.float(),
    "to_long": lambda M, a, b, c: a.long(),
    # unary, the input's dtype
    "abs": lambda M, a, b, c: a.abs(),
    "relu": lambda M, a, b, c: a.relu(),
    "sign": lambda M, a, b, c: a.sign(),
    "floor": lambda M, a, b, c: a.floor(),
    "round": lambda M, a, b, c: a.round(),
    "frac": lambda M, a, b, c: a.frac(),
    "square": lambda M, a, b, c: a.square(),
    "pow_number": lambda M, a, b, c: a ** 3,
    "clamp": lambda M, a, b, c: a.clamp(-0.5, 0.5),
    "clamp_min": lambda M, a, b, c: a.clamp(min=0.1),
    "isnan": lambda M, a, b, c: a.isnan(),
    "logical_not": lambda M, a, b, c: (a > 0).logical_not(),
    "bitwise_not": lambda M, a, b, c: ~(a > 0),
    # numbers as operands, type promotion
    "plus_number": lambda M, a, b, c: a + 1.5,
    "number_over": lambda M, a, b, c: 2 / a,
    "number_pow": lambda M, a, b, c: 2 ** a,
    "float_times_int": lambda M, a, b, c: a * (b > 0).long(),
    "int_plus_number": lambda M, a, b, c: (a > 0).long() + 2.5,
    "int_exp": lambda M, a, b, c: (a > 0).long().exp(),
    "int_div": lambda M, a, b, c: (a > 0).long() / (b < 0).int(),
    "float32_plus_float64": lambda M, a, b, c: a.float() + b,
    "gt_number": lambda M, a, b, c: a > 0.5,
    "eq": lambda M, a, b, c: a == b,
    # two and three operands, broadcast
    "sub": lambda M, a, b, c: a - b,
    "pow": lambda M, a, b, c: a.abs() ** b,
    "atan2": lambda M, a, b, c: M.atan2(a, b),
    "minimum": lambda M, a, b, c: M.minimum(a, b),
    "remainder": lambda M, a, b, c: M.remainder(a, b),
    "hypot": lambda M, a, b, c: M.hypot(a, b),
    "xlogy": lambda M, a, b, c: M.xlogy(a, b),
    "logical_and": lambda M, a, b, c: M.logical_and(a > 0, b > 0),
    "bitwise_xor": lambda M, a, b, c: (a > 0) ^ (b > 0),
    "add_alpha": lambda M, a, b, c: a.add(b, alpha=2),
    "lerp": lambda M, a, b, c: M.lerp(a, b, c),
    "lerp_number": lambda M, a, b, c: M.lerp(a, b, 0.25),
    "addcmul": lambda M, a, b, c: M.addcmul(a, b, c, value=0.5),
    "addcdiv": lambda M, a, b, c: M.addcdiv(a, b, c),
    "clamp_tensors": lambda M, a, b, c: M.clamp(a, b, c),
    "where": lambda M, a, b, c: M.where(c > 0, a, b),
    "where_numbers": lambda M, a, b, c: M.where(c > 0, 1.0, -1.0),
}


@pytest.mark.parametrize("op", sorted(SURFACE))
def test_every_elementwise_op_lays_out_as_torch(M, op):
    rng = np.random.default_rng(sum(map(ord, op)))
    for _ in range(6):
        shape = [int(n) for n in rng.integers(1, 4, int(rng.integers(1, 4)))]
        makers = [_random_operand(rng, shape) for _ in range(3)]
        ours = SURFACE[op](M, *(f(_factory(M)) for f in makers))
        theirs = SURFACE[op](torch, *(f(_factory(torch)) for f in makers))
        _same_layout(M, ours, theirs)


DIFFERENTIABLE = ("tanh", "sqrt", "gelu", "leaky_relu", "hardtanh", "abs", "relu", "square",
                  "pow_number", "clamp", "plus_number", "number_over", "sub", "pow", "atan2",
                  "minimum", "hypot", "xlogy", "add_alpha", "lerp", "addcmul", "addcdiv",
                  "clamp_tensors", "where", "nan_to_num", "to_float32")


@pytest.mark.parametrize("op", DIFFERENTIABLE)
def test_gradients_through_laid_out_results_are_torchs(M, op):
    """Backward through a result laid out as torch's (of a transposed, a contiguous and a
    broadcast operand), reshaped as torch reshapes it: the leaves' gradients have torch's
    values and layout."""
    data = [np.abs(BASE[0, :, :, 0]).T.copy() + 0.5, np.abs(BASE[1, :, :, 1]) + 0.25,
            np.abs(BASE[0, :1, :3, 2]) + 0.75]  # (4, 3), (3, 4), (1, 3)
    grads = []
    for m in (M, torch):
        leaves = [_factory(m)(d, dtype=m.float64).requires_grad_(True) for d in data]
        out = SURFACE[op](m, leaves[0].t(), leaves[1], leaves[2][:, :1])
        assert tuple(out.shape) == (3, 4)
        (out.reshape(-1) * m.arange(12, dtype=m.float64)).sum().backward()
        grads.append([x.grad for x in leaves])
    for ours, theirs in zip(*grads, strict=True):
        assert (ours is None) == (theirs is None)
        if theirs is not None:
            assert tuple(ours.stride()) == tuple(theirs.stride())
            np.testing.assert_allclose(np.asarray(ours.tolist()), theirs.numpy(),
                                       rtol=1e-10, atol=1e-12)
