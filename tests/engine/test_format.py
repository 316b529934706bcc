"""Tensor repr like torch's: literal strings, then torch's own output when torch is present."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gradserve import engine as E


def test_seed_example_reprs():
    x = E.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w1 = E.tensor(2.0, requires_grad=True)
    loss = (x * w1).mean()
    assert repr(loss) == "tensor(5., grad_fn=<MeanBackward0>)"
    loss.backward()
    assert repr(w1.grad) == "tensor(2.5000)"
    assert repr(x.grad) == "tensor([[0.5000, 0.5000],\n        [0.5000, 0.5000]])"
    assert repr(w1) == "tensor(2., requires_grad=True)"
    assert repr(E.tensor([[1.0, 2.0], [3.0, 4.0]]).mean()) == "tensor(2.5000)"
    assert repr(E.tensor(8.0, requires_grad=True) * 1) == "tensor(8., grad_fn=<MulBackward0>)"


LITERALS = [
    (E.tensor([1.0, -2.5]), "tensor([ 1.0000, -2.5000])"),
    (E.tensor([8.0, 16.0]), "tensor([ 8., 16.])"),
    (E.tensor([1, -200, 3]), "tensor([   1, -200,    3])"),
    (E.tensor([True, False]), "tensor([ True, False])"),
    (E.tensor([1e-5, 1.0]), "tensor([1.0000e-05, 1.0000e+00])"),
    (E.tensor([1.5], dtype=E.float64), "tensor([1.5000], dtype=gradserve.float64)"),
    (E.zeros(0), "tensor([])"),
    (E.zeros(0, 3), "tensor([], size=(0, 3))"),
    (E.zeros(0, dtype=E.int64), "tensor([], dtype=gradserve.int64)"),
    (E.tensor([float("nan"), float("inf"), 1.0]), "tensor([nan, inf, 1.])"),
    (E.tensor(7), "tensor(7)"),
    (E.tensor([[1.0, 2.0]]).expand(2, 2), "tensor([[1., 2.],\n        [1., 2.]])"),
]


@pytest.mark.parametrize("t,text", LITERALS, ids=[s for _, s in LITERALS])
def test_literal_reprs(t, text):
    assert repr(t) == text


def test_summarized_repr():
    text = repr(E.arange(2000).reshape(40, 50))
    assert text.count("\n") == 6
    assert text.startswith("tensor([[   0,    1,    2,  ...,   47,   48,   49],\n"
                           "        [  50,   51,   52,  ...,   97,   98,   99],")
    assert "\n        ...,\n" in text


def _torch_style(text: str) -> str:
    # Suffixes (dtype, grad_fn, ...) wrap at 80 columns, and "gradserve.float64" is longer
    # than "torch.float64", so only where they wrap may differ.
    return re.sub(r",\n +(?=(dtype|grad_fn|requires_grad|size|device)=)", ", ", text)


def _cases():
    rng = np.random.default_rng(0)
    return [
        np.array(2.5, np.float32), np.array([[0.5, 0.5], [0.5, 0.5]], np.float32),
        rng.standard_normal((20, 20)).astype(np.float32),
        rng.standard_normal((40, 40)).astype(np.float32),
        np.array([1e-5, 1.0], np.float32), np.array([1e10, 1.0], np.float32),
        np.array([np.nan, np.inf, -np.inf, 1.0], np.float32), np.array([np.nan, 1.5]),
        np.array([0.0, 0.0]), np.array([-0.0, 1.0]), np.arange(2000).reshape(40, 50),
        np.array([True, False]), np.array([1, -200, 3]), np.zeros((0, 3), np.float32),
        np.zeros((0,), np.int64), np.zeros((2, 0, 3)), rng.standard_normal((2, 3, 4)),
        np.array([1e-3, 1e3], np.float32), np.array([100.0, 12345678.0], np.float32),
        np.array([123456789.0], np.float32), rng.standard_normal(100).astype(np.float32) * 1000,
        np.array(7), np.array(True), np.arange(1200, dtype=np.float32).reshape(2, 3, 200),
        np.array([[1e-8, 1.0]]), np.linspace(-1, 1, 30).astype(np.float32),
    ]


@pytest.mark.parametrize("k", range(len(_cases())))
def test_repr_matches_torch(k):
    import torch
    a = _cases()[k]
    for requires_grad in (False, True) if a.dtype.kind == "f" else (False,):
        ours = E.tensor(a, requires_grad=requires_grad)
        theirs = torch.tensor(a, requires_grad=requires_grad)
        pairs = [(ours, theirs)] + ([(ours * 2, theirs * 2)] if requires_grad else [])
        for o, t in pairs:
            expected = repr(t).replace("torch.", "gradserve.")
            assert _torch_style(repr(o)) == _torch_style(expected)
