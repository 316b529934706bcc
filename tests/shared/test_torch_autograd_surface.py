"""API.md section 5's autograd against PyTorch, on engine tensors and on a live session:
tensor hooks, custom autograd.Function, autograd.backward, inference_mode,
autograd.functional, and what f-strings print. Each scenario is one function of the library
(torch or gradserve) whose results must agree; remotely, hooks and Function backwards run in
this client while the server's backward waits for them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)
W = np.array([1.0, -2.0, 0.5], np.float32)


def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if hasattr(v, "detach"):
        return ("tensor", str(v.dtype).split(".")[-1], np.asarray(v.detach().cpu().numpy()
                                                                  if hasattr(v, "cpu") else
                                                                  v.detach().numpy()))
    return v


def _same(ours, theirs, path="result"):
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), path
        for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{path}[{k}]")
    elif isinstance(theirs, tuple) and theirs and theirs[0] == "tensor":
        assert ours[1] == theirs[1], f"{path}: dtype {ours[1]} != {theirs[1]}"
        np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-5, atol=1e-6, err_msg=path)
    else:
        assert ours == theirs, path


def both(M, scenario):
    _same(_plain(scenario(M)), _plain(scenario(torch)))


# -- hooks ---------------------------------------------------------------------------------------
def _leaf_hooks(L):
    seen = []
    x = L.tensor(X, requires_grad=True)
    x.register_hook(lambda g: seen.append(g.detach().clone()))
    h = x.register_hook(lambda g: g * 2)
    x.register_hook(lambda g: g + 1)
    (x * x).sum().backward()
    first = x.grad.clone()
    h.remove()
    x.grad = None
    (x * x).sum().backward()
    return first, x.grad, seen


def _nonleaf_hooks(L):
    x = L.tensor(X, requires_grad=True)
    y = x * 3
    y.retain_grad()
    y.register_hook(lambda g: g * 10)  # retain_grad sees the hooked gradient, as torch
    z = y.tanh()
    z.register_hook(lambda g: None)  # None keeps the gradient
    z.sum().backward()
    return x.grad, y.grad


def _hook_in_autograd_grad(L):
    x = L.tensor(X, requires_grad=True)
    w = L.tensor(W, requires_grad=True)
    h = x * w
    h.register_hook(lambda g: g.clamp(max=0.5))
    return L.autograd.grad((h.sin() * 2).sum(), [x, w])


def _hook_ops_and_values(L):
    x = L.tensor(W, requires_grad=True)
    values = []

    def hook(g):
        values.append(g.tolist())  # a value read inside the hook (remotely: a fetch)
        return g * g.sum()

    x.register_hook(hook)
    (x ** 2).sum().backward()
    return x.grad, values


def _reentrant_hooks(L):
    w = L.tensor(W, requires_grad=True)
    w.register_hook(lambda g: g + 100)
    x = L.tensor(X, requires_grad=True)
    caught = []

    def hook(g):  # a backward inside a hook, through another hook, one of them failing
        with L.enable_grad():
            (w * w).sum().backward()
            y = L.tensor([1.0], requires_grad=True)
            y.register_hook(lambda h: 1 / 0)
            try:
                (y * 2).sum().backward()
            except ZeroDivisionError:
                caught.append(True)
        return g * 2

    x.register_hook(hook)
    (x * x).sum().backward()
    return x.grad, w.grad, caught


@pytest.mark.parametrize("scenario", [_leaf_hooks, _nonleaf_hooks, _hook_in_autograd_grad,
                                      _hook_ops_and_values, _reentrant_hooks])
def test_hooks(M, scenario):
    both(M, scenario)


# -- custom Functions ----------------------------------------------------------------------------
def _functions(L):
    class Scale(L.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, factor, flag):
            ctx.save_for_backward(x, w)
            ctx.factor = factor
            ctx.flags = (ctx.needs_input_grad, flag)
            return x * w * factor, x + 1

        @staticmethod
        def backward(ctx, g, g2):  # g2: zeros for the unused output (materialized)
            x, w = ctx.saved_tensors
            return g * w * ctx.factor + g2, (g * x * ctx.factor).sum(0), None, None

    class Exp(L.autograd.Function):
        @staticmethod
        def forward(x):
            return x.exp()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * out

    x = L.tensor(X, requires_grad=True)
    w = L.tensor(W, requires_grad=True)
    y, unused = Scale.apply(x, w, 2.0, "f")
    z = Exp.apply(y * 0.1).sum()
    z.backward()
    names = (y.grad_fn.name(), z.grad_fn.next_functions[0][0].name())
    return x.grad, w.grad, names, unused.requires_grad


def _function_double_backward(L):
    class Cube(L.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g  # written in tensor ops: differentiable again

    x = L.tensor(W, requires_grad=True)
    (g,) = L.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    g.sum().backward()
    return g, x.grad


def _function_dirty(L):
    class AddOne_(L.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.add_(1)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g

    x = L.tensor(X, requires_grad=True)
    y = x * 2
    out = AddOne_.apply(y)
    (out * out).sum().backward()
    return out is y, x.grad, out.grad_fn.name()


@pytest.mark.parametrize("scenario", [_functions, _function_double_backward, _function_dirty])
def test_functions(M, scenario):
    both(M, scenario)


def test_function_errors_read_like_torch(M):
    def wrong_count(L):
        class Bad(L.autograd.Function):
            @staticmethod
            def forward(ctx, x, w):
                return x * w

            @staticmethod
            def backward(ctx, g):
                return g

        Bad.apply(L.tensor(X, requires_grad=True), L.tensor(W)).sum().backward()

    def modified(L):
        class Keep(L.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * ctx.saved_tensors[0]

        x = L.tensor(X, requires_grad=True)
        y = x * 1
        out = Keep.apply(y)
        y.mul_(2)
        out.sum().backward()

    for scenario in (wrong_count, modified):
        with pytest.raises(RuntimeError) as theirs:
            scenario(torch)
        with pytest.raises(RuntimeError) as ours:
            scenario(M)
        text = str(theirs.value).split("\n")[0].replace("torch.", "gradserve.")
        assert str(ours.value).split("\n")[0] == text


# -- autograd.backward, inference_mode, functional ------------------------------------------------
def _backward_many(L):
    x = L.tensor(X, requires_grad=True)
    a, b = x.sin(), (x * x).sum(1)
    L.autograd.backward([a, b], [L.ones(2, 3), L.tensor([1.0, -1.0])])
    return x.grad


def _inference(L):
    x = L.tensor(X, requires_grad=True)
    with L.inference_mode():
        y = x * 2
        inside = L.is_inference_mode_enabled()

    @L.inference_mode()
    def f(t):
        return t.exp()

    return y.requires_grad, y.grad_fn is None, inside, f(x).requires_grad, \
        L.is_inference_mode_enabled()


def _functional(L):
    F = L.autograd.functional

    def f(x, w):
        return (x * w).tanh().sum(1)

    x, w = L.tensor(X), L.tensor(W)
    jac = F.jacobian(f, (x, w))
    hes = F.hessian(lambda x: (x ** 3).sum() + x.prod(), L.tensor(W))
    out, vjp = F.vjp(f, (x, w), L.tensor([1.0, 2.0]))
    out2, jvp = F.jvp(lambda t: t.sin() * 2, L.tensor(W), L.tensor([1.0, 0.5, -1.0]))
    single = F.jacobian(lambda t: t.exp(), L.tensor(W))
    return jac, hes, out, vjp, out2, jvp, single


@pytest.mark.parametrize("scenario", [_backward_many, _inference, _functional])
def test_autograd_api(M, scenario):
    both(M, scenario)


def test_formatting(M):
    def texts(L):
        return (f"{L.tensor(1.23456):.3f}", f"{L.tensor(2.5)}", format(L.tensor(7), "03d"),
                f"{L.tensor([1.5, 2.0]).cpu()}", f"{L.tensor(3.0, requires_grad=True) * 2:+.1e}")
    assert texts(M) == texts(torch)
    # gradserve also formats one-element tensors of any rank with a format spec
    assert f"{M.tensor([[0.125]]):.2f}" == "0.12"
    with pytest.raises(TypeError):
        f"{M.tensor([1.0, 2.0]):.2f}"  # noqa: B018
