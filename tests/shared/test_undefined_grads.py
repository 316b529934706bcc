"""A backward that reaches a leaf but gives it no gradient leaves its `.grad` None, as torch's:
linalg.lstsq's residuals and slogdet's sign carry no gradient to their inputs (the ops'
`grads_from`), and a custom Function may return None for an input. In a session the client
knows it without asking the server (its walk without data drops those gradients too), so
`.grad is None` holds at once and a later backward that does give a gradient starts the
`.grad` afresh. torch is the oracle, on engine tensors and in a live session (`M`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle

rng = np.random.default_rng(11)
A, B = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
SQUARE = rng.standard_normal((3, 3))


def _grads(*tensors):
    return [None if t.grad is None else np.asarray(t.grad.tolist()) for t in tensors]


def _same(ours, theirs):
    assert [g is None for g in ours] == [g is None for g in theirs]
    for mine, torchs in zip(ours, theirs, strict=True):
        if torchs is not None:
            np.testing.assert_allclose(mine, torchs, rtol=1e-10, atol=1e-12)


def _lstsq_then_solution(lib, scale_first):
    a = lib.tensor(A, requires_grad=True)
    b = lib.tensor(B, requires_grad=True)
    src = a * 2 if scale_first else a  # through an intermediate node, or straight to the leaf
    r = lib.linalg.lstsq(src, b)
    r.residuals.sum().backward(retain_graph=True)
    first = _grads(a, b)
    r.solution.pow(2).sum().backward()  # accumulation from None: a fresh .grad
    return first, _grads(a, b)


@pytest.mark.parametrize("scale_first", [False, True])
def test_lstsq_residuals_alone_give_no_grad_then_the_solution_does(M, scale_first):
    ours = _lstsq_then_solution(M, scale_first)
    theirs = _lstsq_then_solution(torch, scale_first)
    assert theirs[0] == [None, None]
    for mine, torchs in zip(ours, theirs, strict=True):
        _same(mine, torchs)


def _existing_grad_kept(lib):
    a = lib.tensor(A, requires_grad=True)
    b = lib.tensor(B, requires_grad=True)
    (a.sum() * 3).backward()
    held = a.grad
    r = lib.linalg.lstsq(a, b)
    r.residuals.retain_grad()
    r.residuals.sum().backward()
    # the residuals' own .grad is torch's empty one; a's is untouched, b's still None
    return (held is a.grad, tuple(r.residuals.grad.shape), _grads(a, b))


def test_a_grad_the_residuals_do_not_reach_is_left_as_it_was(M):
    ours, theirs = _existing_grad_kept(M), _existing_grad_kept(torch)
    assert ours[:2] == theirs[:2] == (True, (0,))
    _same(ours[2], theirs[2])
    assert theirs[2][1] is None


def _slogdet_sign(lib):
    a = lib.tensor(SQUARE, requires_grad=True)
    sign, logabsdet = lib.linalg.slogdet(a)
    sign.sum().backward(retain_graph=True)
    first = _grads(a)
    logabsdet.backward()
    return first, _grads(a)


def test_slogdet_sign_alone_gives_no_grad(M):
    ours, theirs = _slogdet_sign(M), _slogdet_sign(torch)
    assert theirs[0] == [None]
    for mine, torchs in zip(ours, theirs, strict=True):
        _same(mine, torchs)


def _grad_wrt(lib, allow_unused):
    a = lib.tensor(A, requires_grad=True)
    b = lib.tensor(B, requires_grad=True)
    r = lib.linalg.lstsq(a, b)
    try:
        out = lib.autograd.grad(r.residuals.sum(), [a, b], allow_unused=allow_unused)
    except RuntimeError as e:  # gradserve's AutogradError is one too
        return str(e)
    return [g is None for g in out]


@pytest.mark.parametrize("allow_unused", [True, False])
def test_autograd_grad_through_the_residuals_is_unused(M, allow_unused):
    assert _grad_wrt(M, allow_unused) == _grad_wrt(torch, allow_unused)


def _function_none(lib):
    class Scale(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(y)
            return x * y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y, None  # y is treated as a constant: no gradient for it

    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = lib.tensor([3.0, 4.0], requires_grad=True)
    Scale.apply(x, y).sum().backward()
    first = _grads(x, y)
    (x * y).sum().backward()
    return first, _grads(x, y)


def test_a_function_returning_none_leaves_that_input_without_grad(M):
    ours, theirs = _function_none(M), _function_none(torch)
    assert theirs[0][1] is None
    for mine, torchs in zip(ours, theirs, strict=True):
        _same(mine, torchs)


def _failing_backward(lib):
    a = lib.tensor(SQUARE, requires_grad=True)
    b = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = lib.tensor([4.0, 5.0], requires_grad=True)
    (c * c).sum().backward()  # a .grad from before, kept as it was
    r = lib.linalg.qr(a, mode="r").R
    try:  # b's branch runs first (made last), then qr's backward raises
        (r.sum() + (b * b).sum()).backward()
        if lib is not torch and lib.current_session() is not None:
            lib.current_session().synchronize()  # a session's errors surface at a wait
    except RuntimeError as e:
        error = str(e).split("\n")[0]
    return error, _grads(a, b, c)


def test_a_backward_that_fails_part_way_keeps_the_grads_written_before(M):
    """In a session the error surfaces at the next wait; the client then asks which leaves
    the failed backward reached, instead of expecting a `.grad` for each."""
    ours, theirs = _failing_backward(M), _failing_backward(torch)
    assert ours[0] == theirs[0]
    assert [g is None for g in theirs[1]] == [True, False, False]
    _same(ours[1], theirs[1])
