"""einsum records torch 2.13's graph (aten's einsum without opt_einsum: diagonal and movedim,
unsqueeze, permute, partial sums, sumproduct_pair's permute/reshape/bmm/view/permute, a final
view or sum), node for node, with torch's values, gradients and errors, on engine tensors and
in a live session."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch  # the oracle

from .test_grad_fn_types import _graph
from .test_matmul_graphs import _agree

# (equation, operand shapes)
CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij,jk->ki", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
    ("ij,ij->", [(2, 3), (2, 3)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("i,j->ij", [(2,), (3,)]),
    ("i,i->", [(3,), (3,)]),
    ("ij,j->i", [(2, 3), (3,)]),
    ("ijk->i", [(2, 3, 4)]),
    ("ij->ji", [(2, 3)]),
    ("ij->ij", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij,j->i", [(3, 3, 2), (2,)]),
    ("jii->ij", [(2, 3, 3)]),
    ("ij,jk->i", [(2, 3), (3, 4)]),
    ("ijk,j->i", [(2, 3, 4), (3,)]),
    ("ijk,jl->", [(2, 3, 4), (3, 5)]),
    ("ij,kj->", [(2, 3), (4, 3)]),
    ("i,i,i->", [(2,), (2,), (2,)]),
    ("ij,j,jk->", [(2, 3), (3,), (3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk,kl,lm->im", [(2, 3), (3, 4), (4, 2), (2, 3)]),
    ("ij,jk->ik", [(2, 1), (1, 4)]),
    ("ij,jk->ik", [(2, 3), (1, 4)]),
    ("ij,ik->", [(2, 0), (2, 3)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 4)]),
    ("...ij,...jk->...ik", [(5, 2, 2, 3), (2, 3, 4)]),
    ("...ij,...jk", [(2, 1, 3), (5, 1, 3, 2)]),
    ("i...->...", [(2, 3, 4)]),
    ("...i,...i->...", [(2, 3), (3,)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("bhqk,bhkd->bqhd", [(2, 2, 3, 5), (2, 5, 5, 4)[:0] or (2, 2, 5, 4)]),
    ("Ab,bc->Ac", [(2, 3), (3, 4)]),
    ("aB,Bc->ac", [(2, 3), (3, 4)]),
    ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]),
    ("i j , j k -> i k", [(2, 3), (3, 4)]),
]


def _operands(lib, shapes):
    rng = np.random.default_rng(sum(map(len, shapes)) * 7 + len(shapes))
    return [lib.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


@pytest.mark.parametrize("eq,shapes", CASES, ids=[f"{e}{s}" for e, s in CASES])
def test_einsum_is_torchs_graph(M, eq, shapes):
    ours_in, theirs_in = _operands(M, shapes), _operands(torch, shapes)
    _agree(M.einsum(eq, *ours_in), torch.einsum(eq, *theirs_in), ours_in, theirs_in)


def test_einsum_takes_a_list_of_operands(M):
    a, b = _operands(M, [(2, 3), (3, 4)])
    ta, tb = _operands(torch, [(2, 3), (3, 4)])
    ours, theirs = M.einsum("ij,jk", [a, b]), torch.einsum("ij,jk", [ta, tb])
    assert _graph(ours.grad_fn) == _graph(theirs.grad_fn)


@pytest.mark.parametrize("eq,shapes", [
    ("ij,kj->", [(2, 3), (4, 2)]),
    ("ii->i", [(2, 3)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (3, 3, 4)]),
    ("ij,jk", [(2, 3), (3, 4, 5)]),
    ("ij->k", [(2, 3)]),
    ("ij->ii", [(2, 3)]),
    ("ij,jk", [(2, 3)]),
    ("ij", [(2, 3), (3, 4)]),
    ("ijk...->i", [(2, 3)]),
])
def test_einsums_errors_are_torchs(M, eq, shapes):
    with pytest.raises(RuntimeError) as theirs:
        torch.einsum(eq, *[torch.zeros(s) for s in shapes])
    with pytest.raises(RuntimeError, match=re.escape(str(theirs.value))):
        M.einsum(eq, *[M.zeros(s) for s in shapes])


@pytest.mark.parametrize("eq,shapes", [("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
                                       ("ii,ij->j", [(3, 3), (3, 2)]),
                                       ("ij,jk,k->i", [(2, 3), (3, 2), (2,)]),
                                       ("...i,...i->...", [(2, 3), (3,)])])
def test_einsum_gradchecks_to_second_order(eq, shapes):
    from gradserve import engine
    from gradserve.engine.gradcheck import check_grads

    check_grads(lambda *xs: engine.einsum(eq, *xs), _operands(engine, shapes), order=2)


def _random_equation(rng):
    """One to four operands over labels a-d and B (sizes 1-3, some broadcast to 1), maybe an
    ellipsis and an explicit output in a random order."""
    size = {c: rng.choice([1, 2, 3]) for c in "abcdB"}
    ell = rng.random() < 0.3
    terms, shapes = [], []
    for _ in range(rng.choice([1, 2, 2, 3, 4])):
        term = "".join(rng.choice("abcdB") for _ in range(rng.randint(1, 3)))
        shape = [size[c] if rng.random() > 0.2 else 1 for c in term]
        shape = [shape[term.index(c)] for c in term]  # a repeated label has one size
        if ell and rng.random() < 0.7:
            term, shape = "..." + term, [rng.choice([1, 2]) for _ in range(rng.randint(0, 2))
                                         ] + shape
        terms.append(term)
        shapes.append(tuple(shape))
    eq = ",".join(terms)
    if rng.random() < 0.6:
        out = [c for c in sorted({c for t in terms for c in t if c != "."})
               if rng.random() < 0.5]
        rng.shuffle(out)
        if "..." in eq and rng.random() < 0.7:
            out.insert(rng.choice([0, len(out)]), "...")
        eq += "->" + "".join(out)
    return eq, shapes


def test_random_equations_are_torchs(M):
    import random

    rng = random.Random(16)
    for _ in range(60):
        eq, shapes = _random_equation(rng)
        arrays = [np.random.default_rng(len(eq)).standard_normal(s) for s in shapes]
        try:
            theirs = torch.einsum(eq, *[torch.tensor(a) for a in arrays])
        except RuntimeError as e:
            with pytest.raises(RuntimeError, match=re.escape(str(e))):
                M.einsum(eq, *[M.tensor(a) for a in arrays])
            continue
        ours = M.einsum(eq, *[M.tensor(a, requires_grad=True) for a in arrays])
        theirs = torch.einsum(eq, *[torch.tensor(a, requires_grad=True) for a in arrays])
        assert _graph(ours.grad_fn) == _graph(theirs.grad_fn), eq
        np.testing.assert_allclose(np.asarray(ours.tolist()).reshape(ours.shape),
                                   theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
