"""Remote custom Functions and hooks leave nothing behind on the server (issue 14 item 4): a
loop of calls keeps the session's tensor count constant (the server's own count, from
DescribeSession), and each call of a Function backward or a hook costs one round trip."""

from __future__ import annotations

import gc
import math

import gradserve as gs
import pytest


class Cube(gs.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


class Exp(gs.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = x.exp()
        ctx.save_for_backward(out)  # its own output: no cycle through the node may keep it
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


def _count(s) -> int:
    return s.info()["tensor_count"]


@pytest.mark.parametrize("kind", ["function", "forward only", "output saved", "hook",
                                  "builtin"])
def test_a_loop_of_calls_keeps_the_server_tensor_count_constant(s, kind):
    x = s.tensor([1.0, 2.0], requires_grad=True)

    def step():
        if kind == "function":
            y = Cube.apply(x * 1.0)  # saves an intermediate, as most Functions do
        elif kind == "forward only":
            Cube.apply(x * 1.0)
            return
        elif kind == "output saved":
            y = Exp.apply(x * 1.0)
        elif kind == "hook":
            y = x * x
            y.register_hook(lambda g: g * 2)
        else:
            y = x ** 3
        y.sum().backward()

    gc.disable()  # what the cyclic collector would free is not what this test counts
    try:
        for _ in range(5):
            step()
        before = _count(s)
        for _ in range(150):
            step()
        assert _count(s) == before
    finally:
        gc.enable()
    if kind != "forward only":
        assert x.grad is not None


def test_the_gradients_are_right():
    from gradserve import engine

    for where in (engine,):
        x = where.tensor([0.5, 2.0], requires_grad=True, dtype=where.float64)
        Exp.apply(Cube.apply(x * 1.0)).sum().backward()
        want = [3 * v * v * math.exp(v ** 3) for v in (0.5, 2.0)]
        assert x.grad.tolist() == pytest.approx(want, rel=1e-12)


def test_a_remote_functions_gradients_match_in_process(s):
    x = s.tensor([0.5, 2.0], requires_grad=True, dtype=gs.float64)
    Exp.apply(Cube.apply(x * 1.0)).sum().backward()
    want = [3 * v * v * math.exp(v ** 3) for v in (0.5, 2.0)]
    assert x.grad.tolist() == pytest.approx(want, rel=1e-12)


def test_one_round_trip_per_function_or_hook_call(s):
    x = s.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(Cube.apply(x))  # two Function nodes
    y.register_hook(lambda g: g * 1)  # and a hook
    waits = s.stats.waits
    y.sum().backward()
    # backward itself waits once (a graph with callbacks is waited for), and each of the
    # three callbacks is one round trip, its answer riding on the request that resumes it
    assert s.stats.waits - waits == 1 + 3
    assert x.grad.tolist() == [9.0, 9.0 * 2.0 ** 8]  # d(x**9)/dx
