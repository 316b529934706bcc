"""API.md section 5 against PyTorch, on engine tensors and on a live remote session.

Every expression is written once against torch's surface and run three ways from the same
numpy inputs: `torch`, `gradserve` with no current session (in-process engine tensors) and
`gradserve` inside `gs.use(session)` (remote tensors). Outputs (tensors anywhere in tuples
and named tuples, Python values) must agree in values, dtypes, shapes and grad_fn names;
then one backward from the same random upstream gradients must give the same input grads.
Errors must be of torch's type (and, where listed, say what torch says).
"""

from __future__ import annotations

import math
import zlib
from typing import NamedTuple

import gradserve as gs
import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI


class Expr(NamedTuple):
    id: str
    fn: object  # fn(M, *tensors): M is torch or gradserve
    inputs: tuple  # numpy arrays; floating ones require grad unless grad=False
    grad: bool


EXPRS: list[Expr] = []


def expr(id, fn, *inputs, grad=True):
    EXPRS.append(Expr(id, fn, tuple(np.asarray(a) for a in inputs), grad))


_rng = np.random.default_rng(7)


def r(*shape, dtype=np.float32):
    return _rng.standard_normal(shape).astype(dtype)


def d(*shape):
    """Distinct values (no ties)."""
    n = math.prod(shape)
    return (_rng.permutation(n) * 0.37 - n * 0.2).reshape(shape).astype(np.float32)


def ints(*shape, lo=-5, hi=6, dtype=np.int64):
    return _rng.integers(lo, hi, shape).astype(dtype)


def pos(*shape):
    return _rng.uniform(0.5, 2.0, shape).astype(np.float32)


def unit(*shape):
    return _rng.uniform(-0.9, 0.9, shape).astype(np.float32)


MASK = np.array([[True, False, True, False], [False, True, True, False],
                 [True, True, False, False]])
GRID = np.array([[-2.5, -1.5, -0.5, 0.5], [1.5, 2.5, -1.25, 0.75], [3.7, -3.7, 0.0, 2.49]],
                np.float32)
TIES = np.array([[1.0, 3.0, 3.0, 2.0], [2.0, 2.0, -1.0, 5.0], [0.0, 0.0, 0.0, 0.0]], np.float32)

# -- comparisons, logic, bitwise ---------------------------------------------------------------
for op in ("eq", "ne", "lt", "le", "gt", "ge"):
    expr(op, lambda M, a, b, op=op: getattr(a, op)(b), TIES, TIES.T[:1].T)
    expr(f"{op}-scalar", lambda M, a, op=op: getattr(a, op)(2.0), TIES)
for op in ("logical_and", "logical_or", "logical_xor"):
    expr(op, lambda M, a, b, op=op: getattr(a, op)(b), MASK, TIES)
expr("logical_not", lambda M, a: a.logical_not(), TIES)
expr("and-or-xor-bool", lambda M, a, b: ((a & b) | (~a)) ^ b, MASK, MASK[::-1].copy())
expr("and-or-xor-int", lambda M, a, b: ((a & b) | (~a)) ^ (b & 3), ints(3, 4), ints(4))
expr("and-int32-scalar", lambda M, a: (a & 6) | 1, ints(5, dtype=np.int32))
expr("rand-ror", lambda M, a: (True & a) | (False ^ a), MASK)
for op in ("all", "any"):
    expr(op, lambda M, a, op=op: getattr(a, op)(), MASK)
    expr(f"{op}-dim", lambda M, a, op=op: getattr(a, op)(1, keepdim=True), TIES)
    expr(f"{op}-uint8", lambda M, a, op=op: getattr(a, op)(0), ints(3, 2, lo=0, hi=2,
                                                                   dtype=np.uint8))
expr("equal", lambda M, a, b: (M.equal(a, b), a.equal(a)), TIES, TIES[::-1].copy())
expr("isclose-allclose", lambda M, a, b: (a.isclose(b, atol=0.5), a.allclose(a + 1e-7)),
     TIES, TIES + 0.3)
expr("isnan-isinf-isfinite", lambda M, a: (a.isnan(), a.isinf(), a.isfinite()),
     np.array([1.0, np.nan, np.inf, -np.inf], np.float32))

# -- order statistics --------------------------------------------------------------------------
expr("max-dim", lambda M, a: a.max(1), d(3, 4))
expr("max-dim-keepdim", lambda M, a: a.max(dim=0, keepdim=True), d(3, 4))
expr("min-dim", lambda M, a: M.min(a, 1), d(3, 4))
expr("max-values-indices", lambda M, a: (a.max(1).values * 2, a.max(1).indices), d(3, 4))
expr("max-other", lambda M, a, b: (a.max(b), M.min(a, b)), r(3, 4), r(4))
expr("sort", lambda M, a: a.sort(), d(3, 4))
expr("sort-desc-dim0", lambda M, a: M.sort(a, 0, descending=True), d(3, 4))
expr("sort-stable-ties", lambda M, a: a.sort(stable=True), TIES)
expr("sort-stable-ties-desc", lambda M, a: a.sort(dim=1, descending=True, stable=True), TIES)
expr("argsort", lambda M, a: a.argsort(1), d(3, 4))
expr("topk", lambda M, a: a.topk(2), d(3, 4))
expr("topk-smallest", lambda M, a: M.topk(a, 2, dim=0, largest=False), d(3, 4))
expr("median", lambda M, a: a.median(), d(3, 4))
expr("median-ties", lambda M, a: a.median(), TIES)
expr("median-dim", lambda M, a: a.median(1), d(3, 4))
expr("median-dim-ties", lambda M, a: a.median(dim=1, keepdim=True), TIES)
expr("kthvalue", lambda M, a: a.kthvalue(2), d(3, 4))
expr("kthvalue-dim0", lambda M, a: M.kthvalue(a, 3, 0, True), d(3, 4))
expr("amax-amin", lambda M, a: (a.amax(1), a.amin(), M.amax(a, (0, 1))), TIES)
expr("norm", lambda M, a: (a.norm(), a.norm(1), a.norm(dim=1), a.norm(3, 0, True)), r(3, 4))
expr("norm-inf", lambda M, a: (a.norm(float("inf")), a.norm(float("-inf"), 1)), TIES)
expr("norm-zero", lambda M, a: a.norm(), np.zeros((2, 2), np.float32))
expr("norm-p", lambda M, a: (a.norm(0.5), a.norm(0)), np.array([0.0, 1.5, -2.0], np.float32))
expr("logsumexp", lambda M, a: (a.logsumexp(1), M.logsumexp(a, (0, 1), keepdim=True)),
     r(3, 4) * 30)
expr("cumsum-cumprod", lambda M, a: (a.cumsum(1), a.cumprod(0)), r(3, 4))
expr("cumprod-zeros", lambda M, a: a.cumprod(1), np.array([[1.5, 0.0, 2.0, -1.0],
                                                          [0.0, 0.0, 3.0, 1.0]], np.float32))
expr("cumsum-int", lambda M, a: (a.cumsum(0), a.cumprod(0)), ints(4, dtype=np.int32))
expr("prod", lambda M, a: (a.prod(), a.prod(1)), r(3, 4))
expr("var-std-correction", lambda M, a: (a.var(correction=0), a.std(1, correction=2),
                                         a.var(0, unbiased=False)), r(3, 4))
expr("sum-mean-dtype", lambda M, a: (a.sum(dtype=M.float64), a.mean(1, dtype=M.float64)),
     r(3, 4))

# -- elementwise math --------------------------------------------------------------------------
for op, data in [("square", r(3, 4)), ("rsqrt", pos(3, 4)), ("sign", GRID), ("floor", GRID),
                 ("ceil", GRID), ("round", GRID), ("trunc", GRID), ("frac", GRID),
                 ("log1p", pos(3, 4)), ("expm1", r(3, 4)), ("log2", pos(3, 4)),
                 ("log10", pos(3, 4)), ("erf", r(3, 4)), ("sinh", r(3, 4)), ("cosh", r(3, 4)),
                 ("asin", unit(3, 4)), ("acos", unit(3, 4)), ("atan", r(3, 4))]:
    expr(op, lambda M, a, op=op: getattr(a, op)(), data)
    expr(f"gs.{op}", lambda M, a, op=op: getattr(M, op)(a), data)
expr("round-decimals", lambda M, a: a.round(decimals=1), GRID * 1.111)
expr("rounding-ints", lambda M, a: (a.floor(), a.ceil(), a.round(), a.trunc(), a.sign(),
                                    a.square()), ints(5, dtype=np.int32))
expr("float-of-ints", lambda M, a: (a.rsqrt(), a.log1p(), a.sinh()), ints(4, lo=1, hi=5))
expr("remainder-fmod", lambda M, a, b: (a.remainder(b), a % b, a.fmod(b)), GRID, pos(4))
expr("remainder-fmod-scalar", lambda M, a: (a % 1.5, a.fmod(-1.5), M.remainder(a, 2)), GRID)
expr("remainder-ints", lambda M, a: (a % 3, a.fmod(3), a // 3, 7 % a), ints(6, lo=1, hi=9))
expr("floor-divide", lambda M, a, b: (a // b, 5.0 // b), GRID, pos(4), grad=False)
expr("maximum-minimum", lambda M, a, b: (M.maximum(a, b), a.minimum(b)), TIES, TIES[::-1].copy())
expr("maximum-int-float", lambda M, a, b: M.maximum(a, b), ints(4), r(4))
expr("lerp", lambda M, a, b: (a.lerp(b, 0.25), M.lerp(a, b, 0.5)), r(3, 4), r(4))
expr("lerp-tensor", lambda M, a, b, w: a.lerp(b, w), r(3, 4), r(3, 4), r(4))
expr("atan2", lambda M, a, b: (a.atan2(b), M.atan2(b, a)), r(3, 4), r(3, 4))
expr("functions", lambda M, a: (M.exp(a), M.sum(a, 1), M.clamp(a, -0.5, 0.5), M.relu(a),
                                M.softmax(a, 1), M.abs(a), M.mean(a)), r(3, 4))
expr("max-function", lambda M, a: (M.max(a), M.max(a, 0)), d(3, 4))

# -- shape, select, scatter --------------------------------------------------------------------
IDX = np.array([[0, 1, 2, 0], [2, 0, 1, 1]])
expr("repeat-tile", lambda M, a: (a.repeat(2, 1), a.repeat(2, 1, 2), a.tile(2), M.tile(a, (2,))),
     r(3, 4))
expr("expand_as", lambda M, a, b: a.expand_as(b), r(4), r(3, 4))
expr("split", lambda M, a: a.split(2), r(5, 3))
expr("split-sizes", lambda M, a: M.split(a, [1, 2], dim=1), r(4, 3))
expr("chunk", lambda M, a: (a.chunk(2), M.chunk(a, 3, 1)), r(5, 4))
expr("unbind", lambda M, a: a.unbind(1), r(3, 2))
expr("iterate", lambda M, a: tuple(row * 2 for row in a), r(3, 2))
expr("flip-roll", lambda M, a: (a.flip(0), M.flip(a, (0, 1)), a.roll(1), a.roll((1, -1), (0, 1))),
     r(3, 4))
expr("narrow", lambda M, a: (a.narrow(1, 1, 2), M.narrow(a, 0, -2, 2)), r(3, 4))
expr("gather", lambda M, a: (a.gather(0, M.tensor(IDX)), M.gather(a, 1, M.tensor(IDX[:, :2]))),
     r(3, 4))
expr("scatter", lambda M, a, s: (a.scatter(0, M.tensor(IDX), s), a.scatter(1, M.tensor(
    IDX[:, :1]), 2.5)), r(3, 4), r(2, 4))
expr("scatter_add", lambda M, a, s: a.scatter_add(1, M.tensor(IDX), s), r(2, 4), r(2, 4))
expr("index_select", lambda M, a: (a.index_select(0, M.tensor([2, 0, 2])),
                                   M.index_select(a, 1, M.tensor([3]))), r(3, 4))
expr("index_add", lambda M, a, s: (a.index_add(0, M.tensor([0, 2, 0]), s),
                                   a.index_add(0, M.tensor([1, 1, 1]), s, alpha=2)),
     r(3, 4), r(3, 4))
expr("masked_fill", lambda M, a: (a.masked_fill(M.tensor(MASK), 0.5),
                                  a.masked_fill(M.tensor(MASK[0]), -1.0)), r(3, 4))
expr("masked_fill-tensor", lambda M, a, v: a.masked_fill(M.tensor(MASK), v), r(3, 4),
     np.float32(2.0))
expr("tril-triu", lambda M, a: (a.tril(), a.triu(1), M.tril(a, -1), M.triu(a)), r(3, 4))
expr("diagonal", lambda M, a: (a.diagonal(), a.diagonal(1), M.diagonal(a, -1, 1, 2)), r(2, 3, 4))
expr("unflatten-movedim", lambda M, a: (a.unflatten(1, (2, 2)), a.movedim(0, 1),
                                        M.movedim(a, (0, 1), (1, 0))), r(3, 4))
expr("swapaxes-mT", lambda M, a: (a.swapaxes(0, 2), a.mT, M.swapaxes(a, 1, 0)), r(2, 3, 4))
expr("contiguous", lambda M, a: (a.t().contiguous(), a.contiguous() * 1), r(3, 4))
expr("cat-stack", lambda M, a, b: (M.cat([a, b]), M.stack([a, b], 1)), r(2, 3), r(2, 3))
expr("einsum-mm", lambda M, a, b: M.einsum("ij,jk->ik", a, b), r(2, 3), r(3, 4))
expr("einsum-batch", lambda M, a, b: M.einsum("bij,bjk->bik", a, b), r(2, 2, 3), r(2, 3, 4))
expr("einsum-dot-outer", lambda M, a, b: (M.einsum("i,i->", a, b), M.einsum("i,j->ij", a, b)),
     r(3), r(3))
expr("einsum-trace-transpose", lambda M, a: (M.einsum("ii", a), M.einsum("ij->ji", a),
                                             M.einsum("ii->i", a)), r(3, 3))
expr("einsum-ellipsis", lambda M, a, b: M.einsum("...ij,...jk", a, b), r(2, 2, 3), r(3, 4))
expr("einsum-sum-rows", lambda M, a, b: M.einsum("ij,ij->i", a, b), r(3, 4), r(3, 4))

# -- data-dependent shapes ---------------------------------------------------------------------
expr("mask-index", lambda M, a: a[M.tensor(MASK)], r(3, 4))
expr("mask-index-rows", lambda M, a: a[M.tensor([True, False, True]), 1:], r(3, 4))
expr("mask-index-expr", lambda M, a: a[a > 0] * 2, r(3, 4))


def _mask_set(M, a, v):
    b = a * 1
    b[M.tensor(MASK)] = v
    b[b > 1] = 0.0
    return b


def _index_set(M, a, v):
    b = a * 1
    b[M.tensor([2, 0])] = v
    b[:, [1, 3]] = -1.0
    return b


expr("mask-set", _mask_set, r(3, 4), np.float32(0.5))
expr("index-set", _index_set, r(3, 4), r(4))
expr("index_put-accumulate", lambda M, a, v: a.index_put((M.tensor([1, 1, 0]),), v,
                                                          accumulate=True), r(3, 4), r(4))
expr("nonzero", lambda M, a: (a.nonzero(), M.nonzero(a, as_tuple=True)), MASK)
expr("masked_select", lambda M, a: (a.masked_select(M.tensor(MASK)),
                                    M.masked_select(a, M.tensor(MASK[1]))), r(3, 4))
expr("unique", lambda M, a: (a.unique(), a.unique(return_inverse=True, return_counts=True)),
     np.array([[3, 1, 2], [1, 3, 3]]))
expr("unique-dim", lambda M, a: a.unique(dim=0, return_counts=True),
     np.array([[1, 2], [3, 4], [1, 2]]))
expr("unique-float", lambda M, a: a.unique(), TIES, grad=False)
expr("repeat_interleave", lambda M, a: (a.repeat_interleave(2), a.repeat_interleave(2, 0),
                                        a.repeat_interleave(M.tensor([1, 0, 2]), dim=0),
                                        M.repeat_interleave(M.tensor([2, 0, 1]))), r(3, 2))

# -- dtypes, casts, like-this factories --------------------------------------------------------
DTYPE_NAMES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
for name in DTYPE_NAMES:
    expr(f"from_numpy-{name}", lambda M, a: (M.from_numpy(a.cpu().numpy()) + 0
                                             if a.dtype != M.bool
                                             else M.from_numpy(a.cpu().numpy())),
         np.array([1, 0, 3], dtype=name), grad=False)
expr("casts", lambda M, a: (a.half(), a.short(), a.int(), a.long(), a.bool(), a.byte(),
                            a.double(), a.float(), a.to(M.int8), a.type_as(a.int())), r(3, 4) * 4)
expr("half-math", lambda M, a, b: (a.half() * b.half(), (a.half() + 1).exp(), a.half().sum()),
     r(3, 4), r(4))
expr("promotion", lambda M, a, b, c: (a + b, a * 2.5, b * 2, b + c, c & True, a.int() + b,
                                      b.to(M.uint8) + b.to(M.int8), b.to(M.int16) * 1.5,
                                      b.to(M.float16) + a.double().sum()),
     r(3, 4), ints(4, dtype=np.int32), np.array([True, False, True, True]))
expr("new-like", lambda M, a: (a.new_zeros(2, 3), a.new_ones((2,)), a.new_full((2,), 7.0),
                               a.new_tensor([1, 2]), M.zeros_like(a), M.ones_like(a, dtype=M.int32),
                               M.full_like(a, 2)), r(3, 4).astype(np.float64), grad=False)
expr("factories", lambda M: (M.linspace(-1, 2, 7), M.arange(1, 4, 0.5), M.full((2,), True),
                             M.eye(2, 3, dtype=M.int16), M.zeros(2, dtype=M.float16),
                             M.tensor([1, 2], dtype=M.uint8)))


# -- functional and friends --------------------------------------------------------------------
def _F(M):
    return torch.nn.functional if M is torch else gs.nn.functional


expr("F-activations", lambda M, a: (_F(M).gelu(a), _F(M).silu(a), _F(M).softplus(a),
                                    _F(M).softplus(a, beta=2, threshold=1),
                                    _F(M).leaky_relu(a, 0.2), _F(M).elu(a), _F(M).elu(a, 0.5)),
     r(3, 4) * 3)


# -- the comparison ----------------------------------------------------------------------------
def _make(M, a: np.ndarray, grad: bool):
    t = M.tensor(a)
    if grad and a.dtype.kind == "f":
        t.requires_grad_(True)
    return t


def _flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _flat(o)]
    return [out]


def _dtype(t) -> str:
    return str(t.dtype).split(".")[-1]


def _run(M, e: Expr):
    ins = [_make(M, a, e.grad) for a in e.inputs]
    out = e.fn(M, *ins)
    flat = _flat(out)
    differentiable = [o for o in flat if hasattr(o, "requires_grad") and o.requires_grad]
    grads = None
    if differentiable:
        rng = np.random.default_rng(zlib.crc32(e.id.encode()))
        total = None
        for o in differentiable:
            up = M.tensor(rng.standard_normal(tuple(o.shape)).astype(np.float64))
            term = (o.double() * up).sum()
            total = term if total is None else total + term
        total.backward()
        grads = [t.grad if hasattr(t, "requires_grad") and t.requires_grad else None
                 for t in ins]
    return out, flat, grads


def _values(t) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy() if hasattr(t, "cpu") else t.detach().numpy())


@pytest.mark.filterwarnings("ignore:To copy construct")
@pytest.mark.parametrize("e", EXPRS, ids=[e.id for e in EXPRS])
def test_parity(M, e: Expr):
    _, theirs, their_grads = _run(torch, e)
    _, ours, our_grads = _run(M, e)
    assert len(ours) == len(theirs)
    for k, (o, t) in enumerate(zip(ours, theirs, strict=True)):
        if not isinstance(t, torch.Tensor):
            assert type(o) is type(t) and o == t, f"output {k}"
            continue
        assert isinstance(o, gs.Tensor), f"output {k}"
        assert o.shape == tuple(t.shape) and _dtype(o) == _dtype(t), f"output {k}"
        tol = dict(rtol=2e-3, atol=2e-3) if _dtype(o) == "float16" else dict(rtol=1e-5,
                                                                              atol=1e-6)
        np.testing.assert_allclose(_values(o).astype(np.float64),
                                   _values(t).astype(np.float64), **tol, equal_nan=True,
                                   err_msg=f"output {k}")
        assert o.requires_grad == t.requires_grad, f"output {k}"
        if t.grad_fn is not None:
            assert o.grad_fn.name() == t.grad_fn.name(), f"output {k}"
    if their_grads is None:
        assert our_grads is None
        return
    for k, (g, tg) in enumerate(zip(our_grads, their_grads, strict=True)):
        assert (g is None) == (tg is None), f"input {k}"
        if g is not None:
            assert _dtype(g) == _dtype(tg)
            half = any(_dtype(o) == "float16" for o in ours if isinstance(o, gs.Tensor))
            np.testing.assert_allclose(_values(g), _values(tg), rtol=2e-3 if half else 1e-4,
                                       atol=1e-5, equal_nan=True,
                                       err_msg=f"gradient of input {k}")


# -- errors: torch's type (and text where given) -----------------------------------------------
class Err(NamedTuple):
    id: str
    fn: object
    inputs: tuple
    text: str | None


ERRS = [
    Err("float-and", lambda M, a: a & a, (r(2),), '"bitwise_and_cpu" not implemented for '
                                                  "'Float'"),
    Err("float-invert", lambda M, a: ~a, (r(2),),
        "~ (operator.invert) is only implemented on integer and Boolean-type tensors"),
    Err("frac-int", lambda M, a: a.frac(), (ints(2),), '"frac_cpu" not implemented for '
                                                       "'Long'"),
    Err("norm-int", lambda M, a: a.norm(), (ints(2),),
        "linalg.vector_norm: Expected a floating point or complex tensor as input. Got Long"),
    Err("inplace-int-float", lambda M, a, b: a.add_(b), (ints(2), r(2)),
        "result type Float can't be cast to the desired output type Long"),
    Err("inplace-bool-int", lambda M, a: a.add_(1), (MASK,),
        "result type Long can't be cast to the desired output type Bool"),
    Err("len-0d", lambda M, a: len(a), (np.float32(1.0),), "len() of a 0-d tensor"),
    Err("iter-0d", lambda M, a: iter(a), (np.float32(1.0),), "iteration over a 0-d tensor"),
    Err("bool-many", lambda M, a: bool(a), (r(2),),
        "Boolean value of Tensor with more than one value is ambiguous"),
    Err("mask-shape", lambda M, a: a[M.tensor([True, False])], (r(3),),
        "The shape of the mask [2] at index 0 does not match the shape of the indexed tensor "
        "[3] at index 0"),
    Err("topk-k", lambda M, a: a.topk(5), (r(3),), "selected index k out of range"),
    Err("split-inplace", lambda M, a: (a.requires_grad_() * 1).split(1)[0].mul_(2),
        (r(2, 2),),
        "Output 0 of Split is a view and is being modified inplace. This view is the "
        "output of a function that returns multiple views. Such functions do not allow the "
        "output views to be modified inplace. You should replace the inplace operation by an "
        "out-of-place one."),
    Err("hook-no-grad", lambda M, a: a.register_hook(print), (ints(2),),
        "cannot register a hook on a tensor that doesn't require gradient"),
    Err("mT-1d", lambda M, a: a.mT, (r(3),), None),
    Err("format-many", lambda M, a: f"{a:.2f}", (r(2),), None),
    Err("lerp-dtypes", lambda M, a, b: a.lerp(b.double(), 0.5), (r(2), r(2)), None),
    Err("gather-oob", lambda M, a: a.gather(0, M.tensor([3])).sum().item(), (r(3),), None),
    Err("index_select-oob", lambda M, a: a.index_select(0, M.tensor([3])).sum().item(),
        (r(3),), "index out of range in self"),
    Err("repeat-few-dims", lambda M, a: a.repeat(2), (r(2, 2),),
        "Number of dimensions of repeat dims can not be smaller than number of dimensions of "
        "tensor"),
    Err("unbind-0d", lambda M, a: a.unbind(), (np.float32(1),), None),
    Err("requires-grad-int", lambda M: M.zeros(2, dtype=M.int64, requires_grad=True), (),
        "Only Tensors of floating point and complex dtype can require gradients"),
]


def _raised(M, e: Err):
    ins = [_make(M, a, False) for a in e.inputs]
    try:
        e.fn(M, *ins)
    except Exception as exc:  # noqa: BLE001
        return exc
    return None


@pytest.mark.parametrize("e", ERRS, ids=[e.id for e in ERRS])
def test_errors(M, e: Err):
    theirs, ours = _raised(torch, e), _raised(M, e)
    assert theirs is not None and ours is not None, (theirs, ours)
    if type(theirs).__name__ == "TypeError" or not isinstance(theirs, RuntimeError):
        assert isinstance(ours, type(theirs)), (type(ours), type(theirs))
    else:  # torch.AcceleratorError etc. are RuntimeErrors too
        assert isinstance(ours, RuntimeError) and (
            not isinstance(theirs, NotImplementedError) or isinstance(ours, NotImplementedError))
    if e.text is not None:
        assert e.text in str(ours).replace("gradserve", "torch")
        assert e.text in str(theirs)
