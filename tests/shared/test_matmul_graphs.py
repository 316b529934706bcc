"""Batched matmul records torch 2.13's graph: both operands expanded to the broadcast batch,
reshaped to 3-D (a view, a `_reshape_alias`, or a clone `_unsafe_view`ed, as the memory
allows), one bmm, `_unsafe_view` back; a 3-D operand with a batch of one that needs a gradient
squeezed and folded into one mm. Node for node, with torch's values and gradients, on engine
tensors and in a live session."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch  # the oracle

from .test_grad_fn_types import _graph

# (shape of a, shape of b, a needs a gradient, b needs one, a is made by a transpose)
CASES = [
    ((2, 3, 4), (2, 4, 5), True, True, False),
    ((2, 3, 4), (2, 4, 5), False, True, False),
    ((2, 3, 4), (2, 4, 5), True, False, False),
    ((2, 3, 4), (4, 5), True, False, False),
    ((2, 3, 4), (1, 4, 5), True, True, False),
    ((2, 3, 4), (1, 4, 5), True, False, False),
    ((2, 3, 4), (1, 4, 5), False, True, False),
    ((1, 3, 4), (2, 4, 5), True, True, False),
    ((1, 3, 4), (2, 4, 5), False, True, False),
    ((1, 3, 4), (1, 4, 5), True, True, False),
    ((2, 3, 4), (1, 1, 4, 5), True, True, False),
    ((4, 1, 3, 4), (2, 4, 5), True, True, False),
    ((2, 2, 3, 4), (1, 2, 4, 5), True, True, False),
    ((1, 1, 3, 4), (2, 4, 5), True, False, False),
    ((3, 4), (2, 4, 5), False, True, False),
    ((4,), (2, 4, 5), False, True, False),
    ((2, 3, 4), (4,), True, True, True),
    ((3, 1, 2, 3, 4), (2, 4, 5), True, True, False),
    ((2, 3, 4), (2, 4, 5), True, True, True),
    ((2, 3, 4), (4, 2), True, False, True),
    ((2, 3, 4), (3, 2, 4, 1), True, True, False),
    ((0, 3, 4), (4, 5), True, False, False),
]


def _operands(lib, sa, sb, ra, rb, transposed):
    rng = np.random.default_rng(abs(hash((sa, sb))) % 1000)
    a = lib.tensor(rng.standard_normal(sa[:-2] + sa[:-3:-1] if transposed else sa),
                   requires_grad=ra)
    b = lib.tensor(rng.standard_normal(sb), requires_grad=rb)
    return a, b, (a.transpose(-1, -2) if transposed else a)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}@{c[1]}{c[2:]}" for c in CASES])
def test_batched_matmul_is_torchs_graph(M, case):
    a, b, x = _operands(M, *case)
    ta, tb, tx = _operands(torch, *case)
    _agree(x @ b, tx @ tb, (a, b), (ta, tb))


def _agree(ours, theirs, ours_in, theirs_in):
    """`ours` has torch's graph, shape and values, and a backward gives `ours_in` torch's
    gradients (None where torch's are)."""
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(np.asarray(ours.tolist()).reshape(ours.shape),
                               theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    (ours * ours).sum().backward()
    (theirs * theirs).sum().backward()
    for mine, torchs in zip(ours_in, theirs_in, strict=True):
        assert (mine.grad is None) == (torchs.grad is None)
        if torchs.grad is not None:
            np.testing.assert_allclose(np.asarray(mine.grad.tolist()).reshape(mine.shape),
                                       torchs.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 5, 6)), ((2, 3, 4), (3, 4, 6)),
                                    ((4,), (2, 5, 6)), ((2, 2, 3, 4), (1, 5, 6))])
def test_batched_matmuls_errors_are_torchs(M, shapes):
    sa, sb = shapes
    with pytest.raises(RuntimeError) as theirs:
        torch.randn(*sa) @ torch.randn(*sb)
    with pytest.raises(RuntimeError, match=re.escape(str(theirs.value))):
        M.randn(*sa) @ M.randn(*sb)


def test_batched_matmuls_dtype_error_is_torchs(M):
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Double"):
        M.randn(2, 3, 4) @ M.randn(2, 4, 5, dtype=M.float64)


@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)),
                                    ((2, 3, 4), (1, 4, 2)), ((4,), (2, 4, 3)),
                                    ((2, 3, 4), (4,))])
def test_batched_matmul_gradchecks_to_second_order(shapes):
    from gradserve import engine
    from gradserve.engine.gradcheck import check_grads

    rng = np.random.default_rng(0)
    a, b = (engine.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes)
    check_grads(lambda x, y: x @ y, [a, b], order=2)
