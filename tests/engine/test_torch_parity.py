"""The engine against PyTorch: values, dtypes, gradients and grad_fn names of many expressions.

Each expression is written once against the shared tensor surface and run on both libraries
from the same numpy inputs; backward gets the same random upstream gradient. Inputs include
the edge cases where gradient conventions matter: ties in max/min, zeros in prod, abs, relu
and pow, clamp bounds hit exactly, empty tensors and broadcasting.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI
from gradserve import engine as E


class Expr(NamedTuple):
    id: str
    fn: object  # fn(M, *tensors), M being torch or the engine
    inputs: tuple  # numpy arrays; floating ones require grad


EXPRS: list[Expr] = []


def expr(id, fn, *inputs):
    EXPRS.append(Expr(id, fn, tuple(np.asarray(a) for a in inputs)))


def F(M, name, *args, **kw):
    """torch.nn.functional.<name> or the engine op of the same name."""
    if M is torch:
        return getattr(torch.nn.functional, name)(*args, **kw)
    return args[0]._op(name, *args, **kw)


_rng = np.random.default_rng(0)


def r(*shape, dtype=np.float32):
    return _rng.standard_normal(shape).astype(dtype)


def pos(*shape):
    return _rng.uniform(0.5, 2.0, shape).astype(np.float32)


TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]], np.float32)
ZEROS = np.array([[0.0, 1.5, -2.0], [0.0, 0.0, 3.0], [1.0, 2.0, 0.5]], np.float32)
EDGES = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0], np.float32)

# -- elementwise ---------------------------------------------------------------------------------
for a, b in [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((0, 3), (3,))]:
    tag = f"{a}-{b}"
    expr(f"add-{tag}", lambda M, x, y: x + y, r(*a), r(*b))
    expr(f"sub-{tag}", lambda M, x, y: x - y, r(*a), r(*b))
    expr(f"mul-{tag}", lambda M, x, y: x * y, r(*a), r(*b))
    expr(f"div-{tag}", lambda M, x, y: x / y, r(*a), pos(*b))
    expr(f"pow-{tag}", lambda M, x, y: x ** y, pos(*a), r(*b))
    expr(f"where-{tag}", lambda M, x, y: M.where(x > 0, x, y), r(*a), r(*b))
expr("add-alpha", lambda M, x, y: x.add(y, alpha=2), r(3), r(3))
expr("sub-alpha", lambda M, x, y: x.sub(y, alpha=3), r(3), r(3))
expr("scalar-forms", lambda M, x: (x + 1) * 2 - 3 / (x * x + 1) + (1 - x) / 4, r(2, 3))
expr("rpow", lambda M, x: 2 ** x + 0.5 ** x, r(4))
expr("mixed-dtypes", lambda M, x, d: x * d + d, r(3), r(dtype=np.float64))
expr("float64-broadcast", lambda M, x, d: x * d, r(3, dtype=np.float64), r(3))
expr("where-scalars", lambda M, x: M.where(x > 0, x, 0.5), r(2, 3))
for name in ("neg", "exp", "sin", "cos", "tanh", "sigmoid", "relu", "abs"):
    expr(f"{name}", lambda M, x, n=name: getattr(x, n)(), r(2, 3))
    expr(f"{name}-edges", lambda M, x, n=name: getattr(x, n)(), EDGES)
for name in ("log", "sqrt", "reciprocal"):
    expr(name, lambda M, x, n=name: getattr(x, n)(), pos(2, 3))
expr("sqrt-at-zero", lambda M, x: x.sqrt(), np.array([0.0, 4.0], np.float32))
expr("log-at-zero", lambda M, x: x.log(), np.array([0.0, 4.0], np.float32))
expr("sigmoid-large", lambda M, x: x.sigmoid(), np.array([-100.0, 100.0, 0.0], np.float32))
expr("abs-operator", lambda M, x: abs(x) + (+x), r(3))
for k in (2, 3, 0, 1, 0.5, -1, -2.5):
    base = EDGES if isinstance(k, int) and k >= 0 else np.abs(EDGES) + 0.5
    expr(f"pow-scalar-{k}", lambda M, x, k=k: x ** k, base)
expr("pow-zero-base", lambda M, x, y: x ** y, np.array([0.0, 0.0, 2.0], np.float32),
     np.array([2.0, 0.5, 1.0], np.float32))
expr("rpow-zero-base", lambda M, y: 0.0 ** y, np.array([2.0, 0.5, 0.0], np.float32))
expr("pow-zero-zero", lambda M, x, y: x ** y, np.array([0.0, 0.0], np.float32),
     np.array([0.0, 1.0], np.float32))
expr("pow-negative-base", lambda M, x: x ** 2 + x ** 3 + x ** -2,
     np.array([-1.5, -0.5], np.float32))
for kw in (dict(min=-0.5), dict(max=0.5), dict(min=-0.5, max=1.0)):
    expr(f"clamp-{kw}", lambda M, x, kw=kw: x.clamp(**kw), EDGES)
expr("clip", lambda M, x: x.clip(-0.5, 0.5), EDGES)

# -- matmul -------------------------------------------------------------------------------------
for a, b in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((2, 2, 3), (3, 4)),
             ((2, 3), (2, 3, 4)), ((2, 2, 3), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 2)),
             ((3,), (2, 3, 4)), ((2, 2, 3), (3,)), ((0, 3), (3, 2)), ((2, 3), (2, 2, 3, 4)),
             ((1, 3), (2, 3, 4)), ((2, 3), (2, 3, 1)), ((1, 2, 3), (3, 4))]:
    expr(f"matmul-{a}-{b}", lambda M, x, y: x @ y, r(*a), r(*b))
expr("matmul-fn", lambda M, x, y: M.matmul(x, y), r(2, 3), r(3, 2))

# -- reductions ---------------------------------------------------------------------------------
for kw in ({}, dict(dim=0), dict(dim=1), dict(dim=-1, keepdim=True), dict(dim=(0, 1))):
    expr(f"sum-{kw}", lambda M, x, kw=kw: x.sum(**kw), r(2, 3))
    expr(f"mean-{kw}", lambda M, x, kw=kw: x.mean(**kw), r(2, 3))
for kw in ({}, dict(dim=0), dict(dim=1, keepdim=True), dict(unbiased=False),
           dict(dim=1, correction=0), dict(dim=(0, 1), correction=2)):
    expr(f"var-{kw}", lambda M, x, kw=kw: x.var(**kw), r(3, 4))
    expr(f"std-{kw}", lambda M, x, kw=kw: x.std(**kw), r(3, 4))
expr("sum-empty-dims", lambda M, x: x.sum(dim=()) + x.mean(dim=()), r(2, 3))
expr("std-zero-spread", lambda M, x: x.std(), np.ones(3, np.float32))
expr("std-zero-spread-dim", lambda M, x: x.std(1), np.array([[1.0, 1.0], [1.0, 2.0]], np.float32))
expr("var-no-dof", lambda M, x: x.var(), np.ones(1, np.float32))
expr("softmax-empty", lambda M, x: x.softmax(0) + x.log_softmax(0), r(0))
expr("sum-int", lambda M, x: x.sum(), np.array([1, 2, 3]))
expr("sum-bool", lambda M, x: (x > 0).sum(), r(5))
expr("sum-empty", lambda M, x: x.sum(), r(0, 3))
expr("mean-empty-dim", lambda M, x: x.mean(0), r(0, 3))
expr("prod", lambda M, x: x.prod(), pos(2, 3))
expr("prod-zeros", lambda M, x: x.prod(), ZEROS)
expr("prod-one-zero", lambda M, x: x.prod(), ZEROS[0])
for d in (0, 1, -1):
    expr(f"prod-zeros-dim{d}", lambda M, x, d=d: x.prod(d), ZEROS)
    expr(f"prod-zeros-dim{d}-keep", lambda M, x, d=d: x.prod(d, keepdim=True), ZEROS)
for name in ("max", "min"):
    expr(f"{name}-ties", lambda M, x, n=name: getattr(x, n)(), TIES)
    expr(f"{name}-all-equal", lambda M, x, n=name: getattr(x, n)(), np.ones(4, np.float32))
    for d in (0, 1):
        expr(f"{name}-dim{d}", lambda M, x, n=name, d=d: getattr(x, n)(d)[0], r(3, 4))
        expr(f"{name}-dim{d}-indices", lambda M, x, n=name, d=d: getattr(x, n)(d)[1], r(3, 4))
        expr(f"{name}-dim{d}-keep", lambda M, x, n=name, d=d: getattr(x, n)(d, keepdim=True)[0],
             r(3, 4))
    for d in (0, 1):
        expr(f"{name}-dim{d}-ties", lambda M, x, n=name, d=d: getattr(x, n)(d)[0], TIES)
        expr(f"{name}-dim{d}-ties-indices", lambda M, x, n=name, d=d: getattr(x, n)(d)[1], TIES)
    expr(f"arg{name}-ties", lambda M, x, n=name: getattr(x, "arg" + n)(), TIES)
    expr(f"arg{name}", lambda M, x, n=name: getattr(x, "arg" + n)(), r(3, 4))
    expr(f"arg{name}-dim", lambda M, x, n=name: getattr(x, "arg" + n)(1, keepdim=True), r(3, 4))
for name in ("softmax", "log_softmax"):
    for d in (0, 1, -1):
        expr(f"{name}-{d}", lambda M, x, n=name, d=d: getattr(x, n)(d), r(3, 4))
    expr(f"{name}-large", lambda M, x, n=name: getattr(x, n)(0),
         np.array([1000.0, 0.0, -1000.0], np.float32))

# -- shape and indexing -------------------------------------------------------------------------
expr("reshape", lambda M, x: x.reshape(3, 2) * 2, r(2, 3))
expr("reshape-infer", lambda M, x: x.reshape(-1), r(2, 3))
expr("view", lambda M, x: x.view(6), r(2, 3))
expr("flatten", lambda M, x: x.flatten(1), r(2, 3, 2))
expr("t", lambda M, x: x.t(), r(2, 3))
expr("T", lambda M, x: x.T, r(2, 3))
expr("permute", lambda M, x: x.permute(2, 0, 1), r(2, 3, 4))
expr("transpose", lambda M, x: x.transpose(0, 2), r(2, 3, 4))
expr("squeeze", lambda M, x: x.squeeze(), r(1, 3, 1))
expr("squeeze-dim", lambda M, x: x.squeeze(0), r(1, 3, 1))
expr("unsqueeze", lambda M, x: x.unsqueeze(1), r(2, 3))
expr("expand", lambda M, x: x.expand(2, 3, 4), r(3, 1))
expr("expand_as", lambda M, x, y: x.expand_as(y), r(3, 1), r(3, 4))
for key_id, key in [("int", (1,)), ("slice", (slice(1, None),)), ("int-int", (0, 2)),
                    ("step", (slice(None), slice(None, None, 2))),
                    ("none-ellipsis", (None, Ellipsis, 1)), ("negative", (-1,)),
                    ("list", ([0, 2, 0],)), ("list-dim1", (slice(None), [1, 1]))]:
    expr(f"getitem-{key_id}", lambda M, x, k=key: x[k], r(3, 4))
expr("index-tensor-repeated", lambda M, x, i: x[i], r(3, 4), np.array([0, 2, 0, 0]))
expr("index-tensor-2d", lambda M, x, i: x[i], r(3, 4), np.array([[1, 0], [1, 1]]))
expr("index-two-tensors", lambda M, x, i, j: x[i, j], r(3, 4), np.array([0, 2, 0]),
     np.array([1, 1, 3]))
expr("index-non-adjacent", lambda M, x, i: x[i, :, i], r(3, 2, 3), np.array([0, 2]))
expr("index-scalar-tensor", lambda M, x, i: x[i], r(3, 4), np.array(1))
expr("index-two-scalar-tensors", lambda M, x, i: x[i, i], r(3, 4), np.array(1))
expr("index-scalar-and-vector", lambda M, x, i, j: x[i, j], r(3, 4), np.array(1),
     np.array([0, 2]))
expr("index-after-slice", lambda M, x, i: x[1:, i], r(3, 4), np.array([3, 0]))
expr("cat", lambda M, x, y: M.cat([x, y]), r(2, 3), r(1, 3))
expr("cat-dim1", lambda M, x, y: M.cat([x, y], 1), r(2, 3), r(2, 1))
expr("cat-legacy-empty", lambda M, x, y: M.cat([x, y]), r(2, 3), r(0))
expr("cat-empty-rows", lambda M, x, y: M.cat([x, y]), r(2, 3), r(0, 3))
expr("cat-int-float", lambda M, x, y: M.cat([x, y]), np.array([1, 2]), r(2))
expr("stack", lambda M, x, y: M.stack([x, y], 1), r(2, 3), r(2, 3))
expr("stack-scalars", lambda M, x, y: M.stack([x, y]), r(), r())
expr("len-iter", lambda M, x: M.stack(list(x)) * len(x), r(3, 2))

# -- casts, clones, comparisons -----------------------------------------------------------------
expr("double", lambda M, x: x.double() * 2, r(3))
expr("float", lambda M, x: x.float() * 2, r(3, dtype=np.float64))
expr("to-dtype", lambda M, x: x.to(M.float64), r(3))
expr("long", lambda M, x: x.long(), np.array([1.7, -1.7, 0.2], np.float32))
expr("clone", lambda M, x: x.clone() * x, r(3))
expr("comparisons", lambda M, x, y: M.stack([x < y, x <= y, x > y, x >= y, x == y, x != y]),
     np.array([1.0, 2.0, 3.0], np.float32), np.array([2.0, 2.0, 2.0], np.float32))
expr("int-true-div", lambda M, x: x / 2, np.array([1, 2, 3]))
expr("int-times-float", lambda M, x: x * 1.5, np.array([1, 2, 3]))
expr("bool-plus-int", lambda M, x, y: (x > 0) + y, r(3), np.array([1, 2, 3]))

# -- in place -----------------------------------------------------------------------------------


def _inplace_chain(M, x, w):
    y = x * 1
    y.mul_(w).add_(w).sub_(1).div_(2)
    y += 1
    y *= w
    return y


def _inplace_view(M, x, w):
    y = x * 2
    y[0].mul_(w)
    y[:, 1:] += 1
    y[1, 0] = w[0] * 3
    y[0] = 0.5
    return y


def _copy_into_buffer(M, w):
    buf = M.zeros(2, 3)
    buf[1].copy_(w)
    buf[0, 0].fill_(2.0)
    return buf * buf


def _view_after_base_inplace(M, x):
    y = x * 1
    v = y[1]
    y.mul_(2)
    return v * v


def _clamp_relu_(M, x):
    y = x * 1
    y.clamp_(-0.5, 1.0)
    z = x * 1
    z.relu_()
    return y + z


expr("inplace-chain", _inplace_chain, r(2, 3), r(3))
expr("inplace-through-views", _inplace_view, r(2, 3), r(3))
expr("copy-into-buffer", _copy_into_buffer, r(3))
expr("view-after-base-inplace", _view_after_base_inplace, r(2, 3))
expr("clamp_-relu_", _clamp_relu_, EDGES)
expr("zero_", lambda M, x: (x * 1).zero_() + x, r(3))

# -- nn ops -------------------------------------------------------------------------------------
expr("linear", lambda M, x, w, b: F(M, "linear", x, w, b), r(2, 3), r(4, 3), r(4))
expr("linear-nobias", lambda M, x, w: F(M, "linear", x, w), r(2, 3), r(4, 3))
expr("linear-3d", lambda M, x, w, b: F(M, "linear", x, w, b), r(2, 2, 3), r(4, 3), r(4))
expr("linear-1d", lambda M, x, w, b: F(M, "linear", x, w, b), r(3), r(4, 3), r(4))
for red in ("mean", "sum", "none"):
    expr(f"mse-{red}", lambda M, x, y, red=red: F(M, "mse_loss", x, y, reduction=red),
         r(2, 3), r(2, 3))
    expr(f"cross_entropy-{red}", lambda M, x, t, red=red: F(M, "cross_entropy", x, t,
                                                            reduction=red),
         r(3, 4), np.array([1, 0, 3]))
    expr(f"cross_entropy-ignore-{red}", lambda M, x, t, red=red: F(
        M, "cross_entropy", x, t, reduction=red, ignore_index=1), r(3, 4), np.array([1, 0, 3]))
    expr(f"nll-{red}", lambda M, x, t, red=red: F(M, "nll_loss", x.log_softmax(1), t,
                                                  reduction=red),
         r(3, 4), np.array([1, 0, 3]))
expr("cross_entropy-1d", lambda M, x, t: F(M, "cross_entropy", x, t), r(4), np.array(2))


# -- the comparison -------------------------------------------------------------------------------
def _run(M, e: Expr, upstream_seed: int):
    tensors = []
    for a in e.inputs:
        t = M.tensor(a)
        if a.dtype.kind == "f":
            t.requires_grad_(True)
        tensors.append(t)
    out = e.fn(M, *tensors)
    if isinstance(out, tuple):
        out = out[0]
    grads = None
    if out.requires_grad:
        up = np.random.default_rng(upstream_seed).standard_normal(out.shape)
        out.backward(M.tensor(up.astype(_np_dtype(out))))
        grads = [t.grad for t in tensors]
    return out, grads


def _np_dtype(t) -> np.dtype:
    return np.dtype(str(t.dtype).split(".")[-1])


def _host(t) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy()) if hasattr(t, "cpu") else np.asarray(t)


@pytest.mark.filterwarnings("ignore:var\\(\\). degrees of freedom is")  # ':' splits fields
@pytest.mark.parametrize("e", EXPRS, ids=[e.id for e in EXPRS])
def test_parity(e: Expr):
    seed = zlib.crc32(e.id.encode())
    ours, our_grads = _run(E, e, seed)
    theirs, their_grads = _run(torch, e, seed)

    assert ours.shape == tuple(theirs.shape)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    tol = dict(rtol=1e-5, atol=1e-6) if ours.dtype is not E.float64 else dict(rtol=1e-10)
    np.testing.assert_allclose(ours.detach().numpy(), _host(theirs), **tol, equal_nan=True)

    assert ours.requires_grad == theirs.requires_grad
    if theirs.grad_fn is not None:
        assert ours.grad_fn.name() == theirs.grad_fn.name()
        assert type(ours.grad_fn).__name__ == type(theirs.grad_fn).__name__
    if their_grads is None:
        return
    for k, (g, tg) in enumerate(zip(our_grads, their_grads, strict=True)):
        assert (g is None) == (tg is None), f"input {k}"
        if g is not None:
            assert str(g.dtype).split(".")[-1] == str(tg.dtype).split(".")[-1]
            np.testing.assert_allclose(g.numpy(), _host(tg), rtol=1e-4, atol=1e-5,
                                       equal_nan=True, err_msg=f"gradient of input {k}")


def test_second_derivatives_match_torch():
    x0 = r(2, 3)
    w0 = r(3, 2)

    def run(M):
        x = M.tensor(x0, requires_grad=True)
        w = M.tensor(w0, requires_grad=True)
        y = ((x @ w).tanh() * x.sum(1, keepdim=True).sigmoid()).sum() + (x ** 3).prod()
        gx, gw = M.autograd.grad(y, [x, w], create_graph=True)
        (gx.sin().sum() + (gw * gw).sum()).backward()
        return x.grad, w.grad

    for ours, theirs in zip(run(E), run(torch), strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)
