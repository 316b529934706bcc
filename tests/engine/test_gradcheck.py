"""Numerical gradient checks (central differences, float64) for every differentiable op.

Each Case names the registry op it exercises; `test_every_differentiable_op_is_checked` fails
when an op is registered as differentiable without a case here. Inputs are drawn per case
from a seeded generator, away from kinks (abs, relu, clamp bounds) and ties (max, min), so
the finite differences are well defined.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import NamedTuple

import gradserve.nn.functional as _F
import numpy as np
import pytest
from gradserve import engine as E
from gradserve.engine.gradcheck import GradcheckError, check_grads

# -- input specs: rng -> argument -------------------------------------------------------------


def _leaf(values) -> E.Tensor:
    return E.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def N(*shape):
    """Standard normal values."""
    return lambda rng: _leaf(rng.standard_normal(shape))


def P(*shape):
    """Positive values in [0.5, 2)."""
    return lambda rng: _leaf(rng.uniform(0.5, 2.0, shape))


def G(*shape):
    """Values on a grid that keeps clear of 0 and +-0.5 (kinks of abs, relu, clamp)."""
    grid = np.array([-1.7, -1.1, -0.8, -0.25, 0.15, 0.3, 0.9, 1.4])
    return lambda rng: _leaf(rng.choice(grid, shape) + rng.uniform(-0.02, 0.02, shape))


def D(*shape):
    """Distinct values at least 0.3 apart (no ties for max/min)."""
    n = int(np.prod(shape))
    return lambda rng: _leaf((rng.permutation(n) * 0.3 + rng.uniform(0, 0.05, n) - n * 0.15)
                             .reshape(shape))


def V(values):
    """Exactly these values (zeros for prod, ...)."""
    return lambda rng: _leaf(values)


def K(obj):
    """A constant passed through unchanged (index tensors, masks, targets, shapes)."""
    return lambda rng: obj


class Case(NamedTuple):
    op: str
    fn: Callable
    inputs: tuple
    label: str
    order2: bool = False

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}"


CASES: list[Case] = []


def case(op, fn, *inputs, label, order2=False):
    CASES.append(Case(op, fn, inputs, label, order2))


def _shape_label(*shapes) -> str:
    return "_".join("x".join(map(str, s)) or "scalar" for s in shapes)


# -- elementwise ------------------------------------------------------------------------------
UNARY_SHAPES = [(), (3,), (2, 3), (0,), (2, 0, 3)]
UNARY = [
    ("neg", lambda x: -x, N),
    ("abs", lambda x: x.abs(), G),
    ("exp", lambda x: x.exp(), N),
    ("log", lambda x: x.log(), P),
    ("sqrt", lambda x: x.sqrt(), P),
    ("sin", lambda x: x.sin(), N),
    ("cos", lambda x: x.cos(), N),
    ("tanh", lambda x: x.tanh(), N),
    ("sigmoid", lambda x: x.sigmoid(), N),
    ("relu", lambda x: x.relu(), G),
    ("reciprocal", lambda x: x.reciprocal(), G),
    ("clone", lambda x: x.clone(), N),
    ("to", lambda x: x._op("to", x, dtype="float64", device="cpu"), N),
]
for _op, _fn, _spec in UNARY:
    for _s in UNARY_SHAPES:
        case(_op, _fn, _spec(*_s), label=_shape_label(_s), order2=True)



def _to_host_and_back(x):  # on "cuda" two device moves, whose gradients move back
    host = x._op("to", x, dtype="float64", device="cpu")
    return host._op("to", host * host, dtype="float64", device=x.device) * x


case("to", _to_host_and_back, N(2, 3), label="host-and-back", order2=True)

for _s in UNARY_SHAPES:
    case("clamp", lambda x: x.clamp(min=-0.5), G(*_s), label="min-" + _shape_label(_s),
         order2=True)
    case("clamp", lambda x: x.clamp(max=0.5), G(*_s), label="max-" + _shape_label(_s),
         order2=True)
    case("clamp", lambda x: x.clamp(-0.5, 0.5), G(*_s), label="both-" + _shape_label(_s),
         order2=True)

BINARY_SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((3,), ()),
                 ((), ()), ((0, 3), (3,)), ((2, 0), (1,))]
BINARY = [
    ("add", lambda a, b: a + b, N, N),
    ("sub", lambda a, b: a - b, N, N),
    ("mul", lambda a, b: a * b, N, N),
    ("div", lambda a, b: a / b, N, G),
    ("pow", lambda a, b: a ** b, P, N),
]
for _op, _fn, _sa, _sb in BINARY:
    for _a, _b in BINARY_SHAPES:
        case(_op, _fn, _sa(*_a), _sb(*_b), label=_shape_label(_a, _b), order2=True)
        case(_op, _fn, _sa(*_a), K(_sb(*_b)(np.random.default_rng(0)).detach()),
             label="const-rhs-" + _shape_label(_a, _b), order2=True)

SCALAR_FORMS = [
    ("add", lambda x: x + 2.5, N, "tensor+scalar"),
    ("add", lambda x: 2.5 + x, N, "scalar+tensor"),
    ("sub", lambda x: x - 1.5, N, "tensor-scalar"),
    ("sub", lambda x: 1.5 - x, N, "rsub"),
    ("mul", lambda x: x * 1.5, N, "tensor*scalar"),
    ("div", lambda x: x / 4.0, N, "tensor/scalar"),
    ("reciprocal", lambda x: 3.0 / x, G, "rdiv"),  # torch: reciprocal(x) * 3.0
    ("pow", lambda x: x ** 2, N, "square"),
    ("pow", lambda x: x ** 3, N, "cube"),
    ("pow", lambda x: x ** 0.5, P, "sqrt"),
    ("pow", lambda x: x ** -1.5, P, "negative-exponent"),
    ("pow", lambda x: x ** 0, N, "zero-exponent"),
    ("pow", lambda x: x ** 1, N, "one-exponent"),
    ("pow", lambda x: 2.0 ** x, N, "rpow"),
    ("pow", lambda x: 0.5 ** x, N, "rpow-fraction"),
]
for _op, _fn, _spec, _label in SCALAR_FORMS:
    for _s in [(), (2, 3), (0,)]:
        case(_op, _fn, _spec(*_s), label=f"{_label}-{_shape_label(_s)}", order2=True)

_MASK = K(E.tensor([[True, False, True], [False, False, True]]))
case("where", lambda a, b, m: E.where(m, a, b), N(2, 3), N(2, 3), _MASK, label="2x3",
     order2=True)
case("where", lambda a, b, m: E.where(m, a, b), N(3), N(2, 1), _MASK, label="broadcast",
     order2=True)
case("where", lambda a, m: E.where(m, a, 0.0), N(), _MASK, label="scalar-other", order2=True)
case("where", lambda b, m: E.where(m, 1.0, b), N(2, 3), _MASK, label="scalar-input",
     order2=True)
case("where", lambda a, b, m: E.where(m, a, b), N(0,), N(1,), K(E.tensor(True)), label="empty",
     order2=True)

# -- matmul -----------------------------------------------------------------------------------
MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((2, 2, 3), (3, 4)), ((2, 3), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 2)),
                 ((3,), (2, 3, 4)), ((2, 2, 3), (3,)), ((0, 3), (3, 2)), ((2, 0), (0, 3)),
                 ((2, 3), (3, 0))]


def _matmul_kernel(a, b) -> str:
    """The op a @ b of these shapes records last but for views (torch's composition,
    engine/surface/compose.py: one matmul, or a fold into mm/mv, or mm then squeeze)."""
    fn = (E.zeros(*a, requires_grad=True) @ E.zeros(*b, requires_grad=True)).grad_fn
    while fn.op.name in ("_unsafe_view", "clone", "transpose"):
        fn = fn.next_functions[0][0]
    return fn.op.name


for _a, _b in MATMUL_SHAPES:
    case(_matmul_kernel(_a, _b), lambda a, b: a @ b, N(*_a), N(*_b),
         label=_shape_label(_a, _b), order2=True)

# -- reductions -------------------------------------------------------------------------------
REDUCE = [((), {}), ((), dict(dim=0)), ((4,), {}), ((4,), dict(dim=0, keepdim=True)),
          ((2, 3), {}), ((2, 3), dict(dim=1)), ((2, 3), dict(dim=-2, keepdim=True)),
          ((2, 3, 2), dict(dim=(0, 2))), ((2, 3, 2), dict(dim=(0, 2), keepdim=True)),
          ((2, 0), dict(dim=1)), ((2, 0), dict(dim=0)), ((0,), {})]
for _s, _kw in REDUCE:
    _l = f"{_shape_label(_s)}-{_kw}"
    case("sum", lambda x, kw=_kw: x.sum(**kw), N(*_s), label=_l, order2=True)
    case("mean", lambda x, kw=_kw: x.mean(**kw), N(*_s), label=_l, order2=True)

VAR = [((4,), {}), ((4,), dict(correction=0)), ((4,), dict(correction=2)),
       ((2, 3), dict(dim=1)), ((2, 3), dict(dim=0, keepdim=True)),
       ((2, 3), dict(dim=(0, 1), correction=0)), ((3, 2, 2), dict(dim=(1, 2), unbiased=False)),
       ((2, 3), dict(dim=1, unbiased=True, keepdim=True))]
for _s, _kw in VAR:
    _l = f"{_shape_label(_s)}-{_kw}"
    case("var", lambda x, kw=_kw: x.var(**kw), N(*_s), label=_l, order2=True)
    case("std", lambda x, kw=_kw: x.std(**kw), N(*_s), label=_l, order2=True)
case("var", lambda x: x.var(correction=0), N(), label="scalar", order2=True)

PROD_VALUES = {
    "no-zero": [1.5, -0.7, 2.0, 0.9],
    "one-zero": [1.5, 0.0, -2.0, 0.7],
    "two-zeros": [0.0, 2.0, 0.0, 3.0],
    "2d-zeros": [[0.0, 1.2, -0.5], [1.1, 0.0, 0.0], [0.4, 2.0, -1.3]],
}
for _l, _v in PROD_VALUES.items():
    case("prod", lambda x: x.prod(), V(_v), label=_l, order2=True)
    case("prod", lambda x: x.prod(0), V(_v), label=f"dim0-{_l}", order2=True)
    case("prod", lambda x: x.prod(-1, keepdim=True), V(_v), label=f"keepdim-{_l}",
         order2=True)
    case("prod_others", lambda x: x._op("prod_others", x, dim=0), V(_v), label=_l,
         order2=True)
case("prod", lambda x: x.prod(), N(), label="scalar", order2=True)
case("prod", lambda x: x.prod(0), N(), label="scalar-dim", order2=True)
case("prod", lambda x: x.prod(), N(0), label="empty", order2=True)
case("prod", lambda x: x.prod(1), N(2, 0), label="empty-dim", order2=True)
case("prod_others", lambda x: x._op("prod_others", x, dim=1), N(2, 3), label="dim1",
     order2=True)

for _name in ("max", "min"):
    for _s in [(), (5,), (2, 3)]:
        case(_name, lambda x, n=_name: getattr(x, n)(), D(*_s), label=_shape_label(_s),
             order2=True)
    for _s, _d, _k in [((2, 3), 0, False), ((2, 3), 1, True), ((4,), 0, False),
                       ((), 0, False), ((2, 3, 2), -1, False), ((3, 0), 0, False)]:
        case(f"{_name}_dim", lambda x, n=_name, d=_d, k=_k: getattr(x, n)(d, keepdim=k),
             D(*_s), label=f"{_shape_label(_s)}-dim{_d}-keep{_k}", order2=True)

for _name in ("softmax", "log_softmax"):
    for _s, _d in [((4,), 0), ((2, 3), 0), ((2, 3), -1), ((), 0), ((0, 3), 1), ((2, 3, 2), 1)]:
        case(_name, lambda x, n=_name, d=_d: getattr(x, n)(d), N(*_s),
             label=f"{_shape_label(_s)}-dim{_d}", order2=True)

for _s, _d in [((4,), 0), ((2, 3), 0), ((2, 3), -1), ((), 0), ((2, 3, 2), 1)]:
    case("log_softmax_backward_data", lambda g, o, d=_d: g._op(
        "log_softmax_backward_data", g, o, dim=d), N(*_s), N(*_s),
         label=f"{_shape_label(_s)}-dim{_d}", order2=True)

for _a, _b in [((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), ()), ((2, 3), (2, 3)), ((0, 3), (3,))]:
    case("sum_to", lambda x, s=_b: x._op("sum_to", x, shape=s), N(*_a),
         label=_shape_label(_a, _b), order2=True)

# -- shape and layout -------------------------------------------------------------------------
for _s, _new in [((2, 3), (3, 2)), ((6,), (2, -1)), ((), (1,)), ((1,), ()), ((0, 3), (3, 0))]:
    _l = f"{_shape_label(_s)}-to-{_new}"
    case("reshape", lambda x, n=_new: x.reshape(n), N(*_s), label=_l, order2=True)
    case("view", lambda x, n=_new: x.view(n), N(*_s), label=_l, order2=True)
for _s, _kw in [((2, 3, 2), {}), ((2, 3, 2), dict(start_dim=1)), ((), {}),
                ((2, 3, 2), dict(end_dim=1)), ((0, 2), {})]:
    case("flatten", lambda x, kw=_kw: x.flatten(**kw), N(*_s),
         label=f"{_shape_label(_s)}-{_kw}", order2=True)
for _s in [(2, 3), (3,), ()]:
    case("t", lambda x: x.t(), N(*_s), label=_shape_label(_s), order2=True)
for _s, _p in [((2, 3, 4), (2, 0, 1)), ((2, 3), (1, 0)), ((), ()), ((0, 2), (1, 0))]:
    case("permute", lambda x, p=_p: x.permute(p), N(*_s), label=f"{_shape_label(_s)}-{_p}",
         order2=True)
case("permute", lambda x: x.T, N(2, 3), label="T", order2=True)
for _s, _d0, _d1 in [((2, 3), 0, 1), ((2, 3, 4), -1, 0), ((), 0, 0), ((3,), 0, -1)]:
    case("transpose", lambda x, a=_d0, b=_d1: x.transpose(a, b), N(*_s),
         label=f"{_shape_label(_s)}-{_d0}-{_d1}", order2=True)
for _s, _d in [((1, 3, 1), None), ((1, 3, 1), 0), ((1, 3, 1), (0, 2)), ((2, 3), 0), ((), None),
               ((1, 0), 0)]:
    case("squeeze", lambda x, d=_d: x.squeeze(d), N(*_s), label=f"{_shape_label(_s)}-{_d}",
         order2=True)
for _s, _d in [((2, 3), 0), ((2, 3), -1), ((), 0), ((0,), 1)]:
    case("unsqueeze", lambda x, d=_d: x.unsqueeze(d), N(*_s), label=f"{_shape_label(_s)}-{_d}",
         order2=True)
for _s, _new in [((3, 1), (2, 3, 4)), ((), (2, 3)), ((1,), (0,)), ((2, 3), (-1, 3)),
                 ((3,), (2, 3))]:
    case("expand", lambda x, n=_new: x.expand(*n), N(*_s), label=f"{_shape_label(_s)}-to-{_new}",
         order2=True)

_I = E.tensor([0, 2, 0, 0])  # repeated indices: their gradients must add up
_J = E.tensor([[1, 0], [1, 1]])
BASIC_KEYS = [(0,), (slice(1, None),), (slice(None), 1), (None, Ellipsis, slice(None, None, 2)),
              (-1, 1), (Ellipsis,), (slice(5, 9),)]
for _k in BASIC_KEYS:
    case("getitem", lambda x, k=_k: x[k], N(3, 4), label=repr(_k), order2=True)
case("getitem", lambda x: x[None], N(), label="scalar-None", order2=True)
case("getitem", lambda x: x[E.tensor(1)], N(3, 4), label="0-dim-index-tensor", order2=True)
ADVANCED = [
    ("repeated", lambda x, i: x[i], N(3, 4), K(_I)),
    ("repeated-list", lambda x: x[[0, 2, 0]], N(3, 4)),
    ("second-dim", lambda x, i: x[:, i], N(3, 4), K(_I)),
    ("2d-index", lambda x, j: x[j], N(3, 4), K(_J)),
    ("two-tensors", lambda x, i, j: x[i[:2], j[0]], N(3, 4), K(_I), K(_J)),
    ("non-adjacent", lambda x, i: x[i, :, i], N(3, 2, 3), K(_I)),
    ("scalar-and-vector", lambda x, i, j: x[i, j], N(3, 4), K(E.tensor(1)), K(E.tensor([0, 2]))),
    ("mixed-basic", lambda x, i: x[1:, i, None], N(3, 3, 2), K(E.tensor([1, 1, 0]))),
    ("empty-index", lambda x, i: x[i], N(3, 4), K(E.tensor([], dtype=E.int64))),
]
for _l, _fn, *_ins in ADVANCED:
    case("index", _fn, *_ins, label=_l, order2=True)
for _k, _idx, _shape, _gshape in [
    ((("tensor", 0),), [_I], (3, 4), (4, 4)),
    ((("slice", None, None, None), ("tensor", 0)), [_I], (3, 4), (3, 4)),
    ((("int", 1),), [], (3, 4), (4,)),
]:
    case("index_put_zeros",
         lambda g, *ix, k=_k, s=_shape: g._op("index_put_zeros", g, *ix, key=k, shape=s),
         N(*_gshape), *[K(i) for i in _idx], label=repr(_k), order2=True)

for _shapes, _d in [([(2, 3), (1, 3)], 0), ([(2, 3), (2, 1)], 1), ([(2, 3), (0,)], 0),
                    ([(0,), (2, 3), (0,)], 1), ([(2, 3), (0, 3), (1, 3)], 0), ([(3,)], 0),
                    ([(0,), (0,)], 0), ([(2, 3), (2, 2)], -1)]:
    case("cat", lambda *xs, d=_d: E.cat(xs, d), *[N(*s) for s in _shapes],
         label=f"{'+'.join(_shape_label(s) for s in _shapes)}-dim{_d}", order2=True)
case("cat", lambda a, b: E.cat([a, b]), N(2), K(E.ones(3, dtype=E.float64)), label="const-part",
     order2=True)
for _shapes, _d in [([(2, 3), (2, 3)], 0), ([(2, 3), (2, 3), (2, 3)], -1), ([(), ()], 0),
                    ([(0,), (0,)], 1), ([(3,)], 0)]:
    case("stack", lambda *xs, d=_d: E.stack(xs, d), *[N(*s) for s in _shapes],
         label=f"{'+'.join(_shape_label(s) for s in _shapes)}-dim{_d}", order2=True)

# -- copy / fill (the in-place ops' forward) --------------------------------------------------
case("copy", lambda x, s: x._op("copy", x, s), N(2, 3), N(3), label="op-broadcast",
     order2=True)
case("copy", lambda x, s: x.clone().copy_(s), N(2, 3), N(2, 3), label="copy_", order2=True)
case("copy", lambda x, s: x.clone().copy_(s), N(), N(), label="copy_-scalar", order2=True)
case("fill", lambda x, v: x._op("fill", x, v), N(2, 3), N(), label="op-tensor-value",
     order2=True)
case("fill", lambda x: x.clone().fill_(2.5), N(2, 3), label="fill_", order2=True)
case("fill", lambda x, v: x.clone().fill_(v), N(2, 3), N(), label="fill_-tensor", order2=True)
case("fill", lambda x: x * 1.0 + x.clone().zero_(), N(3), label="zero_", order2=True)

# -- rounded division: piecewise constant, torch's zero gradient (away from the steps) ---------
for _mode in ("floor", "trunc"):
    case("div_mode", lambda a, b, m=_mode: E.div(a, b, rounding_mode=m), N(2, 3), P(3),
         label=f"{_mode}-tensors")
    case("div_mode", lambda a, m=_mode: a.div(-1.5, rounding_mode=m), N(2, 3),
         label=f"{_mode}-number")


# -- samplers: the values they overwrite or draw from get torch's zero gradient ---------------
# (seeded inside each call, so the finite differences see the same draws every time)
def _seeded_fill(method, *args):
    def fn(x, *others):
        E.manual_seed(0)
        y = x * 1.0
        getattr(y, method)(*others, *args)
        return y
    return fn


def Q(*shape):
    """Probabilities in [0.2, 0.8)."""
    return lambda rng: _leaf(rng.uniform(0.2, 0.8, shape))


for _op, _method, _args in [
        ("uniform", "uniform_", ()), ("normal", "normal_", ()), ("exponential", "exponential_", ()),
        ("geometric", "geometric_", (0.3,)), ("cauchy", "cauchy_", ()),
        ("log_normal", "log_normal_", ()), ("bernoulli_p", "bernoulli_", (0.5,)),
        ("random", "random_", (7,))]:
    case(_op, _seeded_fill(_method, *_args), N(2, 3), label=_method)
case("bernoulli", _seeded_fill("bernoulli_"), N(2, 3), Q(3), label="bernoulli_-tensor")
case("poisson", lambda r: (E.manual_seed(0), E.poisson(r))[1], P(2, 3), label="rates")
_DRAWN = E.tensor(np.linspace(-1.0, 2.0, 6).reshape(2, 3))
case("sampled", lambda m: m._op("sampled", m, _DRAWN.to(m.device), node="NormalBackward1"),
     N(2, 3), label="one-parameter")
case("sampled", lambda m, s: m._op("sampled", m, s, _DRAWN.to(m.device),
                                   node="NormalBackward3"), N(2, 1), N(3), label="two-parameters")


# -- in-place ops: recorded through a snapshot of the old value -------------------------------
def _inplace(method, *args):
    def fn(x, *others):
        y = x * 1.0  # a non-leaf to modify
        getattr(y, method)(*others, *args)
        return y

    return fn


INPLACE = [
    ("add", _inplace("add_"), N(2, 3), N(3)),
    ("sub", _inplace("sub_"), N(2, 3), N(2, 3)),
    ("mul", _inplace("mul_"), N(2, 3), N(2, 1)),
    ("div", _inplace("div_"), N(2, 3), G(3)),
    ("mul", _inplace("mul_", 2.5), N(2, 3)),
    ("clamp", lambda x: (x * 1.0).clamp_(-0.5, 0.5), G(2, 3)),
    ("relu", lambda x: (x * 1.0).relu_() * x, G(2, 3)),
    ("copy", _inplace("copy_"), N(2, 3), N(3)),
    ("fill", _inplace("fill_"), N(2, 3), N()),
    ("mul", lambda x: (x * 1.0).mul_(x), N(3)),  # self as the other operand
]
for _op, _fn, *_ins in INPLACE:
    case(_op, _fn, *_ins, label="inplace", order2=True)


def _through_view(view, method):
    def fn(x, w):
        y = x * 1.0
        getattr(view(y), method)(w)
        return y

    return fn


# in place through a view: the base gets a CopySlices (view_scatter) node
VIEWS = [
    ("select-mul_", _through_view(lambda y: y[0], "mul_"), N(2, 3), N(3)),
    ("slice-add_", _through_view(lambda y: y[:, 1:], "add_"), N(2, 3), N(2, 2)),
    ("t-slice-copy_", _through_view(lambda y: y.t()[1:], "copy_"), N(2, 3), N(2, 2)),
    ("reshape-div_", _through_view(lambda y: y.reshape(3, 2)[2], "div_"), N(2, 3), G(2)),
    ("unsqueeze-sub_", _through_view(lambda y: y.unsqueeze(0)[0, 1], "sub_"), N(2, 3), N()),
]
for _l, _fn, *_ins in VIEWS:
    case("view_scatter", _fn, *_ins, label=_l, order2=True)


def _buffer_fill(w):  # a plain buffer filled from a tensor that requires grad
    buf = E.zeros(2, 3, dtype=E.float64, device=w.device)
    buf[1].copy_(w)
    return buf * buf


case("view_scatter", _buffer_fill, N(3), label="buffer-copy_", order2=True)
case("view_scatter",
     lambda b, s: b._op("view_scatter", b, s, steps=(("getitem", {"key": (("int", 1),)}, 0),)),
     N(3, 2), N(2), label="op", order2=True)


def _view_then_base_inplace(x):  # the view's history is rebuilt after the base changed
    y = x * 1.0
    v = y[1]
    y.mul_(x)
    return v * 2.0


case("mul", _view_then_base_inplace, N(2, 3), label="view-after-base-inplace", order2=True)


def _stale_view(view):  # a view made before a write: its grad_fn is AsStridedBackward0
    def fn(x):
        y = x * 1.0
        v = view(y)
        y[:1].mul_(x[1:])
        return v * v
    return fn


for _l, _view in [("select", lambda y: y[1]), ("expand", lambda y: y[0].expand(2, 3)),
                  ("t-slice", lambda y: y.t()[1:]), ("diagonal", lambda y: y.diagonal()),
                  ("unsqueeze-narrow", lambda y: y.unsqueeze(0).narrow(2, 1, 2))]:
    case("restride", _stale_view(_view), N(2, 3), label=_l, order2=True)
case("restride", lambda x: x._op("restride", x * 1.0, steps=(
    ("t", {}, 0), ("getitem", {"key": (("int", 1),)}, 0))), N(2, 3), label="op", order2=True)

# -- neural-network ops -----------------------------------------------------------------------
for _x, _w, _b in [((2, 3), (4, 3), (4,)), ((3,), (4, 3), (4,)), ((2, 2, 3), (4, 3), (4,)),
                   ((2, 3), (4, 3), None), ((0, 3), (4, 3), (4,)), ((2, 3), (4, 3), ())]:
    _ins = [N(*_x), N(*_w)] + ([] if _b is None else [N(*_b)])
    case("linear", lambda *a: a[0]._op("linear", *a), *_ins,
         label=_shape_label(_x, _w, *([] if _b is None else [_b])), order2=True)

for _red in ("mean", "sum", "none"):
    case("mse_loss", lambda a, b, r=_red: a._op("mse_loss", a, b, reduction=r), N(2, 3),
         N(2, 3), label=_red, order2=True)
    case("mse_loss", lambda a, b, r=_red: a._op("mse_loss", a, b, reduction=r), N(2, 3),
         N(3), label=f"broadcast-{_red}", order2=True)
    for _loss in ("cross_entropy", "nll_loss"):
        _tgt = E.tensor([1, 0, 3])
        case(_loss, lambda x, t, r=_red, n=_loss: x._op(n, x, t, reduction=r), N(3, 4),
             K(_tgt), label=_red, order2=True)
        case(_loss, lambda x, t, r=_red, n=_loss: x._op(n, x, t, reduction=r,
                                                        ignore_index=0),
             N(3, 4), K(_tgt), label=f"ignore-{_red}", order2=True)
        case(_loss, lambda x, t, r=_red, n=_loss: x._op(n, x, t, reduction=r), N(4),
             K(E.tensor(2)), label=f"1d-{_red}", order2=True)
    _g = (3,) if _red == "none" else ()
    case("cross_entropy_grad", lambda x, t, g, r=_red: x._op("cross_entropy_grad", x, t, g,
                                                             reduction=r),
         N(3, 4), K(E.tensor([1, 0, 3])), P(*_g), label=_red, order2=True)
    case("cross_entropy_grad", lambda x, t, g, r=_red: x._op(
        "cross_entropy_grad", x, t, g, reduction=r, ignore_index=0),
         N(3, 4), K(E.tensor([1, 0, 3])), P(*_g), label=f"ignore-{_red}", order2=True)
    for _ign in (-100, 0):  # linear in g; logp gives only the shape
        case("nll_loss_grad", lambda x, t, g, r=_red, i=_ign: x._op(
            "nll_loss_grad", x, t, g, reduction=r, ignore_index=i),
             K(E.zeros(3, 4, dtype=E.float64)), K(E.tensor([1, 0, 3])), P(*_g),
             label=f"ignore{_ign}-{_red}", order2=True)
case("threshold_backward", lambda g, o: g._op("threshold_backward", g, o), N(2, 3), K(
    E.tensor([[1.0, -1.0, 2.0], [-0.5, 0.5, 3.0]], dtype=E.float64)), label="2x3", order2=True)


# -- model ops (gradserve.nn): activations, convolution, pooling, norms, losses, lookups ------
for _s in [(3,), (2, 3)]:
    case("erf", lambda x: x._op("erf", x), N(*_s), label=_shape_label(_s), order2=True)
    case("gelu", lambda x: x._op("gelu", x), N(*_s), label=_shape_label(_s), order2=True)
    case("gelu", lambda x: x._op("gelu", x, approximate="tanh"), N(*_s),
         label="tanh-" + _shape_label(_s), order2=True)
    case("silu", lambda x: x._op("silu", x), N(*_s), label=_shape_label(_s), order2=True)
    case("leaky_relu", lambda x: x._op("leaky_relu", x, negative_slope=0.2), G(*_s),
         label=_shape_label(_s), order2=True)

_CONV = [  # x shape, w shape, stride, padding, dilation, groups
    ((1, 2, 5, 4), (3, 2, 3, 2), (1, 1), ((1, 1), (0, 1)), (1, 1), 1),
    ((2, 4, 5, 5), (4, 2, 2, 2), (2, 1), ((0, 1), (1, 1)), (1, 2), 2),
    ((1, 2, 6), (2, 2, 3), (2,), ((1, 1),), (1,), 1),
]


def _geo(st, pad, dil, grp):
    return dict(stride=st, padding=pad, dilation=dil, groups=grp)


for _x, _w, _st, _pad, _dil, _grp in _CONV:
    _g = _geo(_st, _pad, _dil, _grp)
    _lbl = f"{_shape_label(_x, _w)}-s{_st}-g{_grp}"
    case("convolution", lambda x, w, b, g=_g: x._op("convolution", x, w, b, **g), N(*_x),
         N(*_w), N(_w[0]), label=_lbl, order2=True)
    _out = E.get_op("convolution").forward(np, np.zeros(_x), np.zeros(_w), **_g).shape
    case("conv_input_grad", lambda gy, w, g=_g, s=_x: gy._op("conv_input_grad", gy, w,
                                                            input_shape=s, **g),
         N(*_out), N(*_w), label=_lbl, order2=True)
    case("conv_weight_grad", lambda x, gy, g=_g, s=_w: x._op("conv_weight_grad", x, gy,
                                                             weight_shape=s, **g),
         N(*_x), N(*_out), label=_lbl, order2=True)

_POOL = [  # x shape, kernel, stride, padding, dilation, ceil_mode
    ((1, 2, 4, 5), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 1, 5, 5), (3, 2), (2, 1), (1, 1), (1, 2), True),
    ((2, 1, 7), (3,), (2,), (1,), (1,), True),
]
for _x, _k, _st, _pad, _dil, _ceil in _POOL:
    _mp = dict(kernel=_k, stride=_st, padding=_pad, dilation=_dil, ceil_mode=_ceil)
    _lbl = f"{_shape_label(_x)}-k{_k}-s{_st}-ceil{_ceil}"
    case("max_pool", lambda x, m=_mp: x._op("max_pool", x, x._op("max_pool_indices", x, **m)),
         D(*_x), label=_lbl, order2=True)
    _idx = E.tensor(np.arange(int(np.prod(_x))).reshape(_x) * 1.0)
    _idx = _idx._op("max_pool_indices", _idx, **_mp)
    case("max_pool_grad", lambda gy, i, s=_x: gy._op("max_pool_grad", gy, i, input_shape=s),
         N(*_idx.shape), K(_idx), label=_lbl, order2=True)
    for _cip, _div in [(True, None), (False, None), (True, 3)]:
        _ap = dict(kernel=_k, stride=_st, padding=_pad, ceil_mode=_ceil,
                   count_include_pad=_cip, divisor_override=_div)
        _lbl2 = f"{_lbl}-cip{_cip}-div{_div}"
        case("avg_pool", lambda x, a=_ap: x._op("avg_pool", x, **a), N(*_x), label=_lbl2,
             order2=True)
        _o = E.get_op("avg_pool").forward(np, np.zeros(_x), **_ap).shape
        case("avg_pool_grad", lambda gy, a=_ap, s=_x: gy._op("avg_pool_grad", gy,
                                                            input_shape=s, **a),
             N(*_o), label=_lbl2, order2=True)
for _x, _o in [((1, 2, 5, 4), (3, 2)), ((2, 1, 7), (3,)), ((1, 1, 4, 4), (2, 2))]:
    _lbl = f"{_shape_label(_x)}-to-{_o}"
    case("adaptive_avg_pool", lambda x, o=_o: x._op("adaptive_avg_pool", x, output_size=o),
         N(*_x), label=_lbl, order2=True)
    case("adaptive_avg_pool_grad", lambda gy, s=_x: gy._op("adaptive_avg_pool_grad", gy,
                                                          input_shape=s),
         N(*(_x[:2] + _o)), label=_lbl, order2=True)

for _x in [(4, 3), (3, 2, 2, 2)]:
    case("batch_norm", lambda x, w, b: x._op("batch_norm", x, w, b, eps=1e-5)[0], N(*_x),
         N(_x[1]), N(_x[1]), label=_shape_label(_x), order2=True)
    case("batch_norm", lambda x: x._op("batch_norm", x, eps=1e-5)[0], N(*_x),
         label="no-affine-" + _shape_label(_x), order2=True)
for _x, _k in [((2, 4), 1), ((2, 2, 3), 2)]:
    case("layer_norm", lambda x, w, b, k=_k: x._op("layer_norm", x, w, b, normalized_ndim=k,
                                                  eps=1e-5),
         N(*_x), N(*_x[-_k:]), N(*_x[-_k:]), label=_shape_label(_x), order2=True)
    case("layer_norm", lambda x, k=_k: x._op("layer_norm", x, normalized_ndim=k, eps=1e-5),
         N(*_x), label="no-affine-" + _shape_label(_x), order2=True)
case("group_norm", lambda x, w, b: x._op("group_norm", x, w, b, num_groups=2, eps=1e-5),
     N(2, 4, 3), N(4), N(4), label="2x4x3-groups2", order2=True)
case("group_norm", lambda x: x._op("group_norm", x, num_groups=1, eps=1e-5),
     N(1, 2, 2, 2), label="1x2x2x2-groups1-no-affine", order2=True)


def U(*shape):
    """Values in (0.1, 0.9): probabilities away from the clamps at 0 and 1."""
    return lambda rng: _leaf(rng.uniform(0.1, 0.9, shape))


# torch refuses a weight (or pos_weight) that requires grad: constants here
_BCE_W = K(E.tensor([0.5, 1.2, 0.8], dtype=E.float64))
_BCE_PW = K(E.tensor([1.5, 0.7, 1.1], dtype=E.float64))
for _red in ("mean", "sum", "none"):
    case("binary_cross_entropy",
         lambda p, y, w, r=_red: p._op("binary_cross_entropy", p, y, w, reduction=r),
         U(2, 3), U(2, 3), _BCE_W, label=_red, order2=True)
    case("binary_cross_entropy_with_logits",
         lambda x, y, w, pw, r=_red: x._op("binary_cross_entropy_with_logits", x, y, w, pw,
                                           reduction=r),
         N(2, 3), U(2, 3), _BCE_W, _BCE_PW, label=_red, order2=True)
    case("binary_cross_entropy_with_logits",
         lambda x, y, r=_red: x._op("binary_cross_entropy_with_logits", x, y, 1.0, 1.0,
                                    reduction=r),
         N(2, 3), U(2, 3), label="unweighted-" + _red, order2=True)
    case("smooth_l1_loss", lambda a, b, r=_red: a._op("smooth_l1_loss", a, b, reduction=r,
                                                      beta=0.5),
         G(2, 3), G(2, 3), label=_red, order2=True)
    case("huber_loss", lambda a, b, r=_red: a._op("huber_loss", a, b, reduction=r, delta=0.5),
         G(2, 3), G(2, 3), label=_red, order2=True)
case("smooth_l1_loss", lambda a, b: a._op("smooth_l1_loss", a, b, beta=0.0), G(3), G(3),
     label="beta0", order2=True)

_EIDX = K(E.tensor([[0, 2, 2], [3, 1, 0]]))
case("embedding", lambda w, i: w._op("embedding", w, i), N(4, 3), _EIDX, label="repeated",
     order2=True)
# torch's padding_idx row gets no gradient even where it is read, which is not a derivative:
# checked with an unread padding row here, and against torch in tests/nn
case("embedding", lambda w, i: w._op("embedding", w, i, padding_idx=4), N(5, 3), _EIDX,
     label="padding_idx", order2=True)
case("embedding_grad", lambda g, i: g._op("embedding_grad", g, i, num_weights=4,
                                          padding_idx=None), N(2, 3, 3), _EIDX, label="plain",
     order2=True)
case("embedding_grad", lambda g, i: g._op("embedding_grad", g, i, num_weights=4,
                                          padding_idx=2), N(2, 3, 3), _EIDX,
     label="padding_idx", order2=True)
for _mode, _p in [("constant", (1, 2)), ("constant", (-1, 1, 1, 0)), ("reflect", (2, 1)),
                  ("replicate", (1, 2, 2, 0)), ("circular", (1, 2))]:
    case("pad", lambda x, m=_mode, p=_p: x._op("pad", x, pad=p, mode=m, value=0.5), N(2, 3, 4),
         label=f"{_mode}-{_p}", order2=True)
    if _mode != "constant":
        _o = E.get_op("pad").forward(np, np.zeros((2, 3, 4)), pad=_p, mode=_mode).shape
        case("pad_grad", lambda g, m=_mode, p=_p: g._op("pad_grad", g, pad=p, mode=m,
                                                        input_shape=(2, 3, 4)),
             N(*_o), label=f"{_mode}-{_p}", order2=True)


# -- issue 7: the widened torch surface --------------------------------------------------------
def U(*shape):
    """Values in (-0.9, 0.9) (asin, acos)."""
    return lambda rng: _leaf(rng.uniform(-0.9, 0.9, shape))


_SHAPES3 = [(), (2, 3), (0,)]
for _op, _fn, _spec in [
    ("rsqrt", lambda x: x.rsqrt(), P), ("log1p", lambda x: x.log1p(), P),
    ("expm1", lambda x: x.expm1(), N), ("log2", lambda x: x.log2(), P),
    ("log10", lambda x: x.log10(), P), ("sinh", lambda x: x.sinh(), N),
    ("cosh", lambda x: x.cosh(), N), ("asin", lambda x: x.asin(), U),
    ("acos", lambda x: x.acos(), U), ("atan", lambda x: x.atan(), N),
    # piecewise constant away from the grid's kinks (zero gradient), frac's is one
    ("floor", lambda x: x.floor(), G), ("ceil", lambda x: x.ceil(), G),
    ("trunc", lambda x: x.trunc(), G), ("round", lambda x: x.round(), G),
    ("round", lambda x: x.round(decimals=1), G), ("sign", lambda x: x.sign(), G),
    ("frac", lambda x: x.frac(), G),
]:
    for _s in UNARY_SHAPES if _op in ("rsqrt", "asin", "atan") else _SHAPES3:
        case(_op, _fn, _spec(*_s), label=_shape_label(_s) + ("-dec" if "decimals" in str(
            _fn.__code__.co_consts) else ""), order2=True)

for _s in _SHAPES3:
    case("softplus", lambda x: x._op("softplus", x), N(*_s), label=_shape_label(_s),
         order2=True)
    case("softplus", lambda x: x._op("softplus", x, beta=2.0, threshold=1.0), N(*_s),
         label="beta-" + _shape_label(_s), order2=True)
    case("elu", lambda x: x._op("elu", x, alpha=0.5), G(*_s), label=_shape_label(_s),
         order2=True)
_PAIRS = [((2, 3), (2, 3)), ((2, 1), (1, 3)), ((), (2, 3)), ((0, 3), (3,))]
for _op, _fn, _sa, _sb in [
    ("atan2", lambda a, b: a.atan2(b), N, N),
    ("remainder", lambda a, b: a % b, G, P), ("fmod", lambda a, b: a.fmod(b), G, P),
    ("maximum", lambda a, b: E.maximum(a, b), N, N),
    ("minimum", lambda a, b: E.minimum(a, b), N, N),
    ("lerp", lambda a, b: a.lerp(b, 0.3), N, N),
]:
    for _a, _b in _PAIRS:
        case(_op, _fn, _sa(*_a), _sb(*_b), label=_shape_label(_a, _b), order2=True)
for _w in ("gt", "lt"):
    for _a, _b in _PAIRS:
        case("extremum_backward", lambda g, a, b, w=_w: g._op("extremum_backward", g, a, b,
                                                              wins=w), N(*_a), N(*_a), N(*_b),
             label=f"{_w}-{_shape_label(_a, _b)}", order2=True)
    case("extremum_backward", lambda g, a, w=_w: g._op("extremum_backward", g, a, a.flip(0),
                                                        wins=w), N(4),
         K(E.tensor([1.0, 2.0, 2.0, 1.0], dtype=E.float64)), label=f"{_w}-ties", order2=True)
for _s, _d in [((4,), 0), ((2, 3), 1), ((0, 3), 1)]:
    case("cumsum_reverse", lambda x, d=_d: x._op("cumsum_reverse", x, dim=d), N(*_s),
         label=f"{_shape_label(_s)}-{_d}", order2=True)
case("remainder", lambda a: a % 0.7, G(2, 3), label="scalar", order2=True)
case("fmod", lambda a: a.fmod(-0.7), G(2, 3), label="scalar", order2=True)
case("lerp", lambda a, b, w: a.lerp(b, w), N(2, 3), N(3), N(2, 1), label="tensor-weight",
     order2=True)
case("maximum", lambda a: a.max(a.flip(0)), D(4), label="max-other", order2=True)

# index tensors and masks are inputs (K), so that every case also runs on "cuda"
_IDX = K(E.tensor([[0, 1, 2, 0], [2, 0, 1, 1]]))  # distinct rows per column: scatter is exact
_M = K(E.tensor([[True, False, True], [False, False, True]]))
_ROWS = K(E.tensor([True, False]))
_EMPTY_IDX = K(E.zeros(0, 2, dtype=E.int64))
case("gather", lambda x, i: x.gather(0, i), N(3, 4), _IDX, label="dim0", order2=True)
case("gather", lambda x, i: x.gather(1, i), N(3, 4), K(E.tensor([[3, 0], [1, 1], [0, 2]])),
     label="dim1", order2=True)
case("gather", lambda x, i: x.gather(0, i), N(), K(E.tensor(0)), label="scalar", order2=True)
case("gather", lambda x, i: x.gather(1, i), N(0, 3), _EMPTY_IDX, label="empty", order2=True)
for _l, _fn, *_ins in [
    ("src", lambda x, i, s: x.scatter(0, i, s), N(3, 4), _IDX, N(2, 4)),
    ("value", lambda x, i: x.scatter(0, i, 1.5), N(3, 4), _IDX),
    ("scalar", lambda x, i, s: x.scatter(0, i, s), N(), K(E.tensor(0)), N()),
]:
    case("scatter", _fn, *_ins, label=_l, order2=True)
case("scatter_add", lambda x, i, s: x.scatter_add(1, i, s), N(2, 4),
     K(E.tensor([[0, 0, 2], [1, 3, 3]])), N(2, 3), label="repeated", order2=True)
case("scatter_add", lambda x, i, s: x.scatter_add(0, i, s), N(2, 2), _EMPTY_IDX, N(0, 2),
     label="empty", order2=True)
case("index_select", lambda x, i: x.index_select(0, i), N(3, 4), K(E.tensor([2, 0, 2])),
     label="dim0", order2=True)
case("index_select", lambda x, i: x.index_select(1, i), N(3, 4), K(E.tensor(1)),
     label="0-dim-index", order2=True)
case("index_select", lambda x, i: x.index_select(1, i), N(3, 4),
     K(E.zeros(0, dtype=E.int64)), label="empty", order2=True)
case("index_add", lambda x, i, s: x.index_add(0, i, s, alpha=2.0), N(3, 4),
     K(E.tensor([0, 2, 0])), N(3, 4), label="repeated", order2=True)
case("masked_fill", lambda x, m: x.masked_fill(m, 0.5), N(2, 3), _M, label="scalar",
     order2=True)
case("masked_fill", lambda x, m, v: x.masked_fill(m, v), N(2, 3), _M, N(), label="tensor",
     order2=True)
case("masked_fill", lambda x, m: x.masked_fill(m, -1.0), N(2, 3),
     K(E.tensor([True, False, True])), label="broadcast", order2=True)
case("masked_select", lambda x, m: x.masked_select(m), N(2, 3), _M, label="2x3", order2=True)
case("masked_select", lambda x, m: x.masked_select(m), N(3), _M, label="broadcast",
     order2=True)
case("masked_select", lambda x, m: x.masked_select(m), N(0, 3),
     K(E.zeros(0, 3, dtype=E.bool)), label="empty", order2=True)
case("index", lambda x, m: x[m], N(2, 3), _M, label="mask", order2=True)
case("index", lambda x, m: x[m, 1:], N(2, 3), _ROWS, label="mask-rows", order2=True)
for _l, _fn, *_ins in [
    ("mask", lambda x, m, v: x.index_put((m,), v), N(2, 3), _M, N(3)),
    ("mask-scalar-value", lambda x, m, v: x.index_put((m,), v), N(2, 3), _M, N()),
    ("int", lambda x, i, v: x.index_put((i,), v), N(3, 2), K(E.tensor([2, 0])), N(2, 2)),
    ("accumulate", lambda x, i, v: x.index_put((i,), v, accumulate=True), N(3, 2),
     K(E.tensor([1, 1])), N(2)),
    ("setitem", lambda x, m, v: _setitem(x, m, v), N(2, 3), _M, N(1)),
]:
    case("index_put", _fn, *_ins, label=_l, order2=True)


def _setitem(x, key, v):
    y = x * 1.0
    y[key] = v
    return y


for _op in ("tril", "triu"):
    for _s, _d in [((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 3), 0), ((0, 2), 0)]:
        case(_op, lambda x, n=_op, d=_d: getattr(x, n)(d), N(*_s),
             label=f"{_shape_label(_s)}-{_d}", order2=True)

for _op in ("amax", "amin"):
    for _s, _kw in [((2, 3), dict(dim=1)), ((4,), {}), ((2, 3), dict(dim=0, keepdim=True)),
                    ((), {}), ((2, 0), dict(dim=0))]:
        case(_op, lambda x, n=_op, kw=_kw: getattr(x, n)(**kw), D(*_s),
             label=f"{_shape_label(_s)}-{_kw}", order2=True)
    case(_op, lambda x, n=_op: getattr(x, n)(), V([1.0, 3.0, 3.0, 2.0, -3.0, 1.0]),
         label="ties")  # a second derivative across a tie has no finite difference
for _s, _kw, _spec in [((2, 3), {}, N), ((2, 3), dict(p=1), G), ((2, 3), dict(p=3, dim=0), N),
                       ((2, 3), dict(p=float("inf"), dim=1), D), ((4,), dict(p=0.5), P),
                       ((2, 3), dict(dim=1, keepdim=True), N), ((), {}, N), ((0, 3), {}, N),
                       ((3,), dict(p=float("-inf")), D), ((3,), dict(p=0), G)]:
    case("norm", lambda x, kw=_kw: x.norm(**kw), _spec(*_s), label=f"{_shape_label(_s)}-{_kw}",
         order2=True)
for _s, _d in [((2, 3), 1), ((2, 3), (0, 1)), ((), 0), ((0, 3), 1), ((2, 3), 0)]:
    case("logsumexp", lambda x, d=_d: x.logsumexp(d), N(*_s), label=f"{_shape_label(_s)}-{_d}",
         order2=True)
for _s, _d in [((4,), 0), ((2, 3), 1), ((), 0), ((0, 3), 1)]:
    case("cumsum", lambda x, d=_d: x.cumsum(d), N(*_s), label=f"{_shape_label(_s)}-{_d}",
         order2=True)
    case("cumprod", lambda x, d=_d: x.cumprod(d), N(*_s), label=f"{_shape_label(_s)}-{_d}",
         order2=True)
for _l, _v in PROD_VALUES.items():
    case("cumprod", lambda x: x.cumprod(0), V(_v), label=_l, order2=True)

for _s, _kw in [((5,), {}), ((2, 3), dict(dim=0, descending=True)), ((), {}), ((0, 2), {})]:
    case("sort", lambda x, kw=_kw: x.sort(**kw), D(*_s), label=f"{_shape_label(_s)}-{_kw}",
         order2=True)
for _s, _k, _kw in [((5,), 2, {}), ((2, 4), 3, dict(dim=1, largest=False)), ((3,), 0, {})]:
    case("topk", lambda x, k=_k, kw=_kw: x.topk(k, **kw), D(*_s),
         label=f"{_shape_label(_s)}-{_k}-{_kw}", order2=True)
for _s, _k, _kw in [((5,), 2, {}), ((2, 3), 1, dict(dim=0, keepdim=True)), ((), 1, {})]:
    case("kthvalue", lambda x, k=_k, kw=_kw: x.kthvalue(k, **kw), D(*_s),
         label=f"{_shape_label(_s)}-{_k}-{_kw}", order2=True)
for _s in [(5,), (4,), ()]:
    case("median", lambda x: x.median(), D(*_s), label=_shape_label(_s), order2=True)
case("median", lambda x: x.median(), V([2.0, 1.0, 2.0, 3.0]), label="ties")
for _s, _kw in [((2, 3), dict(dim=1)), ((2, 4), dict(dim=1, keepdim=True)), ((), dict(dim=0))]:
    case("median_dim", lambda x, kw=_kw: x.median(**kw), D(*_s),
         label=f"{_shape_label(_s)}-{_kw}", order2=True)

for _l, _fn, _s in [
    ("split", lambda x: x.split(2), (5,)), ("split", lambda x: x.split(1, 1)[1] * 2, (2, 3)),
    ("split", lambda x: x.chunk(2, 1), (2, 3)), ("split", lambda x: x.split(2), (0, 2)),
    ("split_with_sizes", lambda x: x.split([2, 0, 3], 1), (2, 5)),
    ("unbind", lambda x: x.unbind(), (3, 2)), ("unbind", lambda x: x.unbind(1)[0], (3, 2)),
    ("narrow", lambda x: x.narrow(0, 1, 2), (4, 3)), ("narrow", lambda x: x.narrow(1, -2, 2),
                                                       (2, 3)),
    ("narrow", lambda x: x.narrow(0, 0, 0), (2, 3)),
    ("diagonal", lambda x: x.diagonal(), (3, 4)), ("diagonal", lambda x: x.diagonal(1), (3, 4)),
    ("diagonal", lambda x: x.diagonal(-1, 1, 2), (2, 3, 3)),
    ("diagonal", lambda x: x.diagonal(5), (3, 4)),
    ("flip", lambda x: x.flip(0), (2, 3)), ("flip", lambda x: x.flip(0, 1), (2, 3)),
    ("flip", lambda x: x.flip(), ()), ("roll", lambda x: x.roll(1), (2, 3)),
    ("roll", lambda x: x.roll((1, -1), (0, 1)), (2, 3)), ("roll", lambda x: x.roll(2, 0), (0,)),
    ("repeat", lambda x: x.repeat(2, 1), (2, 3)), ("repeat", lambda x: x.repeat(2, 1, 2), (2, 3)),
    ("repeat", lambda x: x.repeat(3), ()), ("repeat", lambda x: x.tile(2), (0, 2)),
]:
    case(_l, _fn, N(*_s), label=f"{_shape_label(_s)}-{_fn.__code__.co_firstlineno}",
         order2=True)


# -- linear algebra (API.md section 7) ---------------------------------------------------------
def SPD(n, batch=()):
    """A symmetric positive-definite matrix (cholesky, eigh): A A^T + n I."""
    def make(rng):
        a = rng.standard_normal((*batch, n, n))
        return _leaf(a @ np.swapaxes(a, -1, -2) + n * np.eye(n))
    return make


def WELL(n, batch=()):
    """A well-conditioned square matrix (inv, det, solve): I*n plus noise."""
    return lambda rng: _leaf(rng.standard_normal((*batch, n, n)) + n * np.eye(n))


def _sym(x):
    return (x + x.mT) * 0.5  # eigh reads one triangle: the checked function is symmetric


for _l, _fn, _ins in [
    ("mm", lambda a, b: a.mm(b), (N(2, 3), N(3, 4))),
    ("bmm", lambda a, b: a.bmm(b), (N(2, 2, 3), N(2, 3, 4))),
    ("mv", lambda a, v: a.mv(v), (N(2, 3), N(3))),
    ("dot", lambda a, b: a.dot(b), (N(3), N(3))),
    ("vdot", lambda a, b: E.vdot(a, b), (N(3), N(3))),
    ("addmm", lambda i, a, b: E.addmm(i, a, b, beta=0.5, alpha=2.0), (N(3), N(2, 3), N(3, 3))),
    ("addmv", lambda i, a, v: E.addmv(i, a, v, alpha=-1.5), (N(2), N(2, 3), N(3))),
    ("baddbmm", lambda i, a, b: E.baddbmm(i, a, b, beta=2.0), (N(2, 2, 4), N(2, 2, 3),
                                                               N(2, 3, 4))),
    ("addbmm", lambda i, a, b: E.addbmm(i, a, b), (N(2, 4), N(3, 2, 3), N(3, 3, 4))),
    ("trace", lambda a: a.trace(), (N(3, 4),)),
    ("linalg_cross", lambda a, b: E.linalg.cross(a, b), (N(2, 3), N(2, 3))),
    ("linalg_cross", lambda a, b: E.cross(a, b, dim=0), (N(3, 2), N(3, 1))),
    ("linalg_inv", lambda a: E.linalg.inv(a), (WELL(3),)),
    ("linalg_inv", lambda a: E.linalg.inv(a), (WELL(2, (2,)),)),
    ("linalg_det", lambda a: E.linalg.det(a), (WELL(3),)),
    ("linalg_det", lambda a: E.linalg.det(a), (WELL(2, (3,)),)),
    ("linalg_slogdet", lambda a: E.linalg.slogdet(a).logabsdet, (WELL(3),)),
    ("linalg_slogdet", lambda a: E.linalg.slogdet(-a).logabsdet, (WELL(3, (2,)),)),
    ("linalg_solve", lambda a, b: E.linalg.solve(a, b), (WELL(3), N(3, 2))),
    ("linalg_solve", lambda a, b: E.linalg.solve(a, b), (WELL(3, (2,)), N(2, 3))),
    ("linalg_lstsq", lambda a, b: E.linalg.lstsq(a, b).solution, (N(4, 3), N(4, 2))),
    ("linalg_lstsq", lambda a, b: E.linalg.lstsq(a, b).solution, (N(2, 3, 4), N(2, 3))),
    ("linalg_lstsq", lambda a, b: tuple(E.linalg.lstsq(a, b, driver="gels")[:2]),
     (N(5, 3), N(5, 2))),
    ("linalg_lstsq", lambda a, b: tuple(E.linalg.lstsq(a, b, driver="gelsd")[:2]),
     (N(2, 5, 3), N(2, 5))),
    ("linalg_lstsq", lambda a, b: tuple(E.linalg.lstsq(a, b, driver="gelss")[:2]),
     (N(4, 2), N(4, 3))),
    ("linalg_lstsq", lambda a, b: E.linalg.lstsq(a, b, driver="gels").solution,
     (N(3, 4), N(3, 2))),
    ("linalg_pinv", lambda a: E.linalg.pinv(a), (N(2, 3),)),
    ("linalg_pinv", lambda a: E.linalg.pinv(a), (N(2, 4, 3),)),
    ("linalg_pinv", lambda a: E.linalg.pinv(a, hermitian=True), (SPD(3),)),
    ("linalg_solve_right", lambda a, b: E.linalg.solve(a, b, left=False), (WELL(3), N(2, 3))),
    ("linalg_solve_right", lambda a, b: E.linalg.solve(a, b, left=False),
     (WELL(3, (2,)), N(4, 3))),
    ("linalg_cholesky", lambda a: E.linalg.cholesky(_sym(a)), (SPD(3),)),
    ("linalg_cholesky", lambda a: E.linalg.cholesky(_sym(a), upper=True), (SPD(3, (2,)),)),
    ("linalg_eigh", lambda a: E.linalg.eigvalsh(_sym(a)), (SPD(3),)),
    ("linalg_eigh", lambda a: E.linalg.eigh(_sym(a)).eigenvectors.abs(), (SPD(3),)),
    ("linalg_svd", lambda a: E.linalg.svdvals(a), (N(2, 3),)),
    ("linalg_svd", lambda a: E.linalg.matrix_norm(a, "nuc"), (N(3, 3),)),
    ("linalg_svd", lambda a: tuple(x.abs() for x in E.linalg.svd(a, full_matrices=False)),
     (N(4, 3),)),
    ("linalg_svd", lambda a: tuple(x.abs() for x in E.linalg.svd(a, full_matrices=False)),
     (N(2, 2, 3),)),
    ("linalg_svd", lambda a: E.linalg.svd(a).U.abs(), (N(3, 3),)),
    ("linalg_pinv", lambda a: E.linalg.pinv(a), (N(3, 2),)),
    ("linalg_lstsq", lambda a, b: E.linalg.lstsq(a, b).solution, (N(3, 4), N(3, 2))),
    ("linalg_qr", lambda a: tuple(E.linalg.qr(a)), (N(4, 3),)),
    ("linalg_qr", lambda a: tuple(E.linalg.qr(a)), (N(2, 3, 3),)),
    ("linalg_qr", lambda a: tuple(E.linalg.qr(a)), (N(2, 4),)),
    ("linalg_qr", lambda a: E.linalg.qr(a).R, (N(3, 5),)),
    ("linalg_qr", lambda a: E.linalg.qr(a, mode="complete").Q, (N(2, 3),)),
    ("conv_transpose", lambda x, w: _F.conv_transpose2d(x, w, stride=2, padding=1,
                                                        output_padding=1), (N(1, 2, 3, 3),
                                                                            N(2, 3, 2, 2))),
    ("conv_transpose", lambda x, w, b: _F.conv_transpose1d(x, w, b, groups=2, dilation=2),
     (N(2, 4, 3), N(4, 1, 2), N(2))),
    # the one-kernel forms torch records as one node (engine/ops/nn/resample.py, ...)
    ("upsample", lambda x: _F.interpolate(x, size=(5, 3)), (N(1, 2, 3, 2),)),
    ("upsample", lambda x: _F.interpolate(x, scale_factor=1.5, mode="linear"), (N(2, 1, 4),)),
    ("upsample", lambda x: _F.interpolate(x, size=(4, 5), mode="bilinear"), (N(1, 2, 3, 3),)),
    ("upsample", lambda x: _F.interpolate(x, size=(2, 5), mode="bilinear", align_corners=True),
     (N(1, 1, 3, 3),)),
    ("upsample_grad", lambda g: g._op("upsample_grad", g, input_size=(3, 2), mode="linear",
                                      size=(6, 4), scales=(2.0, 2.0), align_corners=False),
     (N(1, 1, 6, 4),)),
    ("im2col", lambda x: _F.unfold(x, (2, 2), padding=1, stride=(2, 1)), (N(1, 2, 3, 4),)),
    ("im2col", lambda x: _F.unfold(x, 2, dilation=2), (N(2, 5, 4),)),
    ("col2im", lambda x: _F.fold(x, (3, 4), (2, 2), padding=1, stride=(2, 1)),
     (N(1, 8, 10),)),
    ("col2im", lambda x: _F.fold(x, (4, 3), (2, 1)), (N(2, 9),)),
    ("pixel_shuffle", lambda x: _F.pixel_shuffle(x, 2), (N(1, 8, 2, 3),)),
    ("pixel_unshuffle", lambda x: _F.pixel_unshuffle(x, 2), (N(2, 4, 2),)),
    ("adaptive_max_pool", lambda x: _F.adaptive_max_pool2d(x, (2, 3)), (D(1, 2, 5, 4),)),
    ("adaptive_max_pool", lambda x: _F.adaptive_max_pool1d(x, 3), (D(2, 7),)),
    ("cdist", lambda a, b: E.cdist(a, b), (N(3, 4), N(2, 4))),
    ("cdist", lambda a, b: E.cdist(a, b, p=1), (N(2, 3, 2), N(2, 2))),
    ("cdist", lambda a, b: E.cdist(a, b, p=3), (N(3, 2), N(4, 2))),
    ("cdist", lambda a, b: E.cdist(a, b, p=float("inf")), (D(3, 2), D(2, 2))),
    ("euclidean_dist", lambda a, b: E.cdist(a, b, compute_mode="use_mm_for_euclid_dist"),
     (N(3, 2), N(2, 2))),
    ("euclidean_dist", lambda a, b: E.cdist(a, b), (N(2, 26, 2), N(2, 3, 2))),
    ("_unsafe_view", lambda a, b: E.kron(a, b), (N(2, 3), N(2, 2))),
    ("hardtanh", lambda x: _F.hardtanh(x, -0.5, 0.7), (G(2, 4),)),
    ("hardtanh", lambda x: _F.relu6(x * 4), (G(3, 3),)),
    ("hardswish", lambda x: _F.hardswish(x * 3), (G(2, 4),)),
    ("hardsigmoid", lambda x: _F.hardsigmoid(x * 3), (G(2, 4),)),
    ("log_sigmoid", lambda x: _F.logsigmoid(x * 3), (N(2, 4),)),
    ("mish", lambda x: _F.mish(x * 2), (N(2, 4),)),
    # issue 16: torch's one-kernel ops (engine/ops/elementwise/extra.py, shrink.py)
    ("exp2", lambda x: x.exp2(), (N(2, 3),)),
    ("logit", lambda x: x.logit(), (V([[0.2, 0.7, 0.45], [0.9, 0.05, 0.6]]),)),
    ("logit", lambda x: x.logit(eps=0.1), (V([0.05, 0.3, 0.8, 0.95]),)),
    ("xlogy", lambda a, b: a.xlogy(b), (N(2, 3), P(3))),
    ("xlogy", lambda a, b: E.xlogy(a, b), (V([0.0, 1.5, -0.5]), P(2, 3))),
    ("hypot", lambda a, b: E.hypot(a, b), (P(2, 3), N(3))),
    ("nan_to_num", lambda x: x.nan_to_num(), (N(2, 3),)),
    ("addcmul", lambda a, b, c: E.addcmul(a, b, c, value=0.5), (N(2, 3), N(3), N(2, 1))),
    ("addcdiv", lambda a, b, c: a.addcdiv(b, c, value=-2), (N(3), N(2, 3), P(2, 3))),
    ("clamp_tensor", lambda x, lo, hi: x.clamp(lo, hi), (G(2, 3), V([-0.5, 0.0, -1.0]),
                                                       V([[0.5], [1.0]]))),
    ("clamp_tensor", lambda x, lo: x.clamp(min=lo), (G(2, 3), V([-0.5, 0.0, -1.0]))),
    ("clamp_tensor", lambda x, hi: E.clamp(x, max=hi), (G(2, 3), V([[0.5], [0.1]]))),
    ("scaled_elu", lambda x: _F.selu(x), (G(2, 4),)),
    ("celu", lambda x: _F.celu(x, alpha=0.7), (G(2, 4),)),
    ("glu", lambda x: _F.glu(x, 0), (N(4, 3),)),
    ("softshrink", lambda x: _F.softshrink(x, 0.6), (G(2, 4),)),
    ("hardshrink", lambda x: _F.hardshrink(x, 0.6), (G(2, 4),)),
    ("threshold", lambda x: _F.threshold(x, 0.2, -3.0), (G(2, 4),)),
    ("nansum", lambda x: x.nansum(), (N(2, 3),)),
    ("sinc", lambda x: x.sinc(), (N(2, 3),)),
    ("cummax", lambda x: x.cummax(1).values, (D(3, 4),)),
    ("cummin", lambda x: E.cummin(x, 0).values, (D(3, 4),)),
    ("nansum", lambda x: E.nansum(x, (0, 2), keepdim=True), (N(2, 3, 2),)),
]:
    case(_l, _fn, *_ins, label=f"{_fn.__code__.co_firstlineno}-{len(CASES)}", order2=True)


# issue 16's compositions, through the ops they record
for _l, _fn, _ins in [
    ("getitem", lambda x: x.select(1, -2), (N(3, 4),)),
    ("diag_embed", lambda v: v.diag(1), (N(3),)),
    ("diag_embed", lambda a: E.diag_embed(a, -1, 0, 2), (N(2, 3),)),
    ("diagonal_copy", lambda x: E.diag(x, -1), (N(3, 4),)),
    ("sub", lambda x, p: x.diff(n=2, dim=1, prepend=p), (N(3, 4), N(3, 1))),
    ("expand", lambda a, b: E.meshgrid(a, b, indexing="xy"), (N(3), N(2))),
    ("cat", lambda a, b: (E.hstack([a, b]), E.vstack([a, b]), E.dstack([a, b])),
     (N(2, 3), N(2, 3))),
    ("std_mean", lambda x: E.std_mean(x, 1), (N(3, 4),)),
    ("std_mean", lambda x: E.std_mean(x, (0, 1), keepdim=True)[0], (N(3, 4),)),
    ("var_mean", lambda x: E.var_mean(x, 0, correction=0), (N(3, 4),)),
    ("var_mean", lambda x: E.var_mean(x)[1], (N(3, 4),)),
    ("getitem", lambda x: x.tensor_split(3, dim=1), (N(2, 5),)),
    ("dist", lambda a, b: E.dist(a, b, 3), (N(2, 3), N(3))),
    ("dist", lambda a, b: a.dist(b), (N(2, 3), N(2, 3))),
    ("dist", lambda a, b: a.dist(b, 1), (G(4,), N(1))),
    ("dist", lambda a, b: a.dist(b, float("inf")), (D(2, 3), V([0.01, 0.02, 0.03]))),
    ("sum", lambda x: x.sum_to_size(3, 1), (N(2, 3, 4),)),
    ("batch_norm", lambda x, w, b: _F.instance_norm(x, weight=w, bias=b), (N(2, 3, 5), P(3),
                                                                         N(3))),
    ("adaptive_avg_pool", lambda x: _F.adaptive_avg_pool1d(x, 3), (N(2, 3, 7),)),
    ("where", lambda x: _F.hinge_embedding_loss(x, E.tensor([[1.0, -1.0, 1.0]],
                                                            dtype=E.float64, device=x.device)),
     (G(2, 3),)),
    ("soft_margin_loss", lambda x: _F.soft_margin_loss(x, x.detach().sign()), (N(2, 3),)),
    ("div", lambda x: _F.softsign(x), (G(2, 3),)),
    ("multi_margin_loss", lambda x: _F.multi_margin_loss(
        x, E.tensor([0, 3, 1], device=x.device), p=2, weight=x.new_tensor([0.5, 1.0, 2.0, 1.5])),
     (N(3, 4),)),
    # the ATen overloads torch's compositions call (engine/ops/elementwise/overloads.py)
    ("add_scalar", lambda x, y: _F.pairwise_distance(x, y, p=3.0), (N(2, 3), N(3))),
    ("norm_dim", lambda x, y: _F.pairwise_distance(x, y, p=1.5), (N(2, 3), N(2, 3))),
    ("sub_scalar", lambda x: x._op("sub_scalar", x, other=0.5) ** 2, (N(2, 3),)),
    ("add_alpha", lambda x, y: x.add(y, alpha=0.5) ** 2, (N(2, 3), N(3))),
    ("sub_alpha", lambda x, y: x.sub(y, alpha=-2.0) ** 2, (N(2, 3), N(2, 3))),
    ("clamp_min", lambda x: x._op("clamp_min", x, bound=0.1) ** 2, (V([-0.5, 0.3, 1.2]),)),
    ("clamp_max", lambda x: x._op("clamp_max", x, bound=0.1) ** 2, (V([-0.5, 0.3, 1.2]),)),
    ("reshape", lambda a, b: E.tensordot(a, b, dims=([1], [1])), (N(2, 3), N(4, 3))),
    ("prelu_kernel", lambda x, w: _F.prelu(x, w), (G(2, 3, 2), N(3))),
    ("sdpa_flash_cpu", lambda q, k, v: _F.scaled_dot_product_attention(q, k, v, is_causal=True),
     (N(1, 2, 3, 4), N(1, 2, 3, 4), N(1, 2, 3, 4))),
    ("_trilinear", lambda a, b, w: _F.bilinear(a, b, w), (N(3, 2), N(3, 4), N(2, 2, 4))),
    ("sub", lambda x: _F.tanhshrink(x), (N(2, 3),)),
    # sdpa's math path, batch_norm with running statistics
    ("_safe_softmax", lambda q, k, v: _F.scaled_dot_product_attention(q, k, v, is_causal=True),
     (N(2, 3, 4), N(2, 3, 4), N(2, 3, 2))),
    ("mul_scalar", lambda x: x.t()._op("mul_scalar", x.t(), other=0.7) ** 2, (N(2, 3),)),
    ("mul", lambda a, b, c: E.einsum("ij,jk,j->", a, b, c), (N(2, 3), N(3, 2), N(3))),
    ("batch_norm_eval", lambda x, w, b: _F.batch_norm(
        x, x.new_tensor([0.1, -0.2, 0.3]), x.new_tensor([0.5, 1.5, 2.0]), w, b),
     (N(4, 3, 2), P(3), N(3))),
]:
    case(_l, _fn, *_ins, label=f"issue16-{_fn.__code__.co_firstlineno}-{len(CASES)}")


# issue 16: rrelu (engine/ops/nn/rrelu.py; training with a fixed draw of slopes) and packed
# sequences (engine/ops/nn/packing.py), to second order
def _slopes(x):
    """Fixed training slopes (a draw would differ between the checker's calls): 1 where
    x > 0, a different one in [0.1, 0.4) per element elsewhere."""
    ramp = E.arange(x.numel(), dtype=x.dtype, device=x.device).reshape(x.shape)
    return E.where(x.detach() > 0, 1.0, 0.1 + 0.3 * ramp / max(x.numel(), 1))


def _rrelu_training(x):
    return x._op("rrelu_with_noise", x, _slopes(x), lower=0.1, upper=0.4)


def _rrelu_in_place(x, training):
    y = x * 1.0
    noise = (_slopes(x),) if training else ()
    return y._inplace("rrelu_with_noise_", *noise, lower=0.1, upper=0.4)


for _l, _fn, _ins in [
    ("rrelu_with_noise", _rrelu_training, (G(3, 4),)),
    ("rrelu_with_noise", lambda x: _F.rrelu(x, 0.1, 0.4), (G(3, 4),)),
    ("rrelu_with_noise_", lambda x: _rrelu_in_place(x, True), (G(3, 4),)),
    ("rrelu_with_noise_", lambda x: _rrelu_in_place(x, False), (G(3, 4),)),
    ("pack_padded_sequence", lambda x: x._op("pack_padded_sequence", x, lengths=[4, 2, 1]),
     (N(4, 3, 2),)),
    ("pack_padded_sequence", lambda x: x._op("pack_padded_sequence", x, lengths=[3, 3, 1, 1],
                                             batch_first=True), (N(4, 3, 2),)),
    # unbatched pooling: one op each, as torch's kernels (engine/ops/nn/pool.py)
    ("max_pool", lambda x: _F.max_pool2d(x, 2, 1), (D(2, 3, 4),)),
    ("avg_pool", lambda x: _F.avg_pool2d(x, 2, 1, 1, count_include_pad=False), (N(2, 3, 4),)),
    ("adaptive_avg_pool", lambda x: _F.adaptive_avg_pool2d(x, (2, 3)), (N(2, 3, 5),)),
    ("pack_padded_sequence_backward",
     lambda g: g._op("pack_padded_sequence_backward", g, shape=(4, 3, 2), lengths=[4, 2, 1]),
     (N(7, 2),)),
]:
    case(_l, _fn, *_ins, label=f"issue16-{_fn.__code__.co_firstlineno}-{len(CASES)}",
         order2=True)


# first order only: its backward takes log of the upstream gradient's positive/negative parts
case("logcumsumexp", lambda x: x.logcumsumexp(1), N(3, 4), label="rows")
case("logcumsumexp", lambda x: E.logcumsumexp(x * 3, 0), N(4, 2), label="columns-wide")

# at 0 torch's sinc derivative is set to 0, so its second derivative there is 0 too (torch's),
# not the finite difference: first order only
case("sinc", lambda x: E.sinc(x), V([0.0, 0.5, -1.5]), label="at-zero")


# -- the tests --------------------------------------------------------------------------------
def _ops_in_graph(outputs) -> set[str]:
    seen, names = set(), set()
    stack = [o.grad_fn for o in outputs if getattr(o, "grad_fn", None) is not None]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if hasattr(node, "op"):
            names.add(node.op.name)
        stack.extend(n for n, _ in node.next_functions)
    return names


def _inputs(c: Case, device: str = "cpu") -> list:
    """The case's arguments; its tensors (constants too) on `device`."""
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    return [_on(spec(rng), device) for spec in c.inputs]


def _on(x, device: str):
    if not isinstance(x, E.Tensor) or x.device == device:
        return x
    return x.detach().to(device).requires_grad_(x.requires_grad)


# Every case runs on the CPU and on "cuda": a real GPU where there is one, else the seam's test
# double (tests/conftest.py), which fails wherever an op skips the seam or mixes devices.
# cuda:1, not cuda:0, so that work done without making the tensor's device current shows.
DEVICES = ["cpu", "cuda:1" if E.cuda_device_count() > 1 else "cuda:0"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_gradcheck(c: Case, device: str):
    inputs = _inputs(c, device)
    out = c.fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    assert c.op in _ops_in_graph(outs), f"case {c.id} does not record op {c.op}"
    if c.op != "to":
        assert all(o.device == device for o in outs), f"case {c.id} left {device}"
    check_grads(c.fn, inputs)


ORDER2 = [c for c in CASES if c.order2]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("c", ORDER2, ids=[c.id for c in ORDER2])
def test_second_order(c: Case, device: str):
    check_grads(c.fn, _inputs(c, device), order=2)


def test_every_differentiable_op_is_checked():
    # ops torch records without a derivative (floor_divide, unique) raise instead: see below
    differentiable = {name for name, op in E.OPS.items() if op.differentiable
                      and not getattr(op.backward, "not_implemented", False)}
    covered = {c.op for c in CASES}
    assert differentiable - covered == set(), "ops without a numerical gradient check"
    assert covered - differentiable == set(), "cases for ops that are not differentiable"


@pytest.mark.parametrize("fn,name", [(lambda x: x // 2, "floor_divide"),
                                     (lambda x: x.unique(), "_unique2"),
                                     (lambda x: 2.0 % x, "remainder")])
def test_ops_without_a_derivative_raise_at_backward(fn, name):
    y = fn(E.tensor([1.5, 2.5], requires_grad=True))
    with pytest.raises(E.AutogradError, match=f"the derivative for '{name}' is not implemented"):
        y.sum().backward()


def test_elementwise_ops_and_matmul_have_second_order_checks():
    must = {op for op, *_ in UNARY + BINARY} | {"clamp", "where", "matmul"}
    assert must <= {c.op for c in ORDER2}


# -- the checker itself -----------------------------------------------------------------------
def test_check_grads_catches_a_wrong_gradient():
    x = E.tensor([0.5, -1.0, 2.0], dtype=E.float64, requires_grad=True)
    # detach() hides x from autograd in the first term, so backward's gradient is wrong
    with pytest.raises(GradcheckError, match="input 0"):
        check_grads(lambda x: x * x.detach(), [x])


def test_check_grads_catches_a_wrong_second_derivative():
    x = E.tensor([0.5, -1.0, 2.0], dtype=E.float64, requires_grad=True)

    def fn(x):  # right first derivative (2x) through a hand-made graph with a wrong second
        return x.detach() * x.detach() + (x - x.detach()) * (2 * x.detach())

    check_grads(fn, [x])
    with pytest.raises(GradcheckError, match="order 2"):
        check_grads(fn, [x], order=2)


def test_check_grads_requires_float64():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        check_grads(lambda x: x * 2, [x])

