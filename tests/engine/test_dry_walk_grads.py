"""The backward walk without data (what a session's client runs over its image of the graph)
gives a `.grad` to exactly the leaves the real walk does, when only one output of a
multi-output node has a gradient: an op whose backward returns None for its inputs then
declares it (`defop(grads_from=...)`), or the client would expect a `.grad` the server never
makes. Every multi_grad op a user can record is in the table, so a new one is checked too."""

from __future__ import annotations

import numpy as np
import pytest
from gradserve import engine
from gradserve.engine.core.autograd import run_backward
from gradserve.engine.core.registry import OPS

rng = np.random.default_rng(3)
M = rng.standard_normal((4, 3))
SQ = rng.standard_normal((3, 3))
SYM = SQ + SQ.T

CALLS = {  # op name: (what records it, from leaves a and b)
    "linalg_lstsq": lambda a, b: engine.linalg.lstsq(b, a.mT),
    "linalg_slogdet": lambda a, b: engine.linalg.slogdet(b[:3]),
    "linalg_eigh": lambda a, b: engine.linalg.eigh(b[:3] + b[:3].mT),
    "linalg_svd": lambda a, b: engine.linalg.svd(a, full_matrices=False),
    "linalg_qr": lambda a, b: engine.linalg.qr(a),
    "std_mean": lambda a, b: engine.std_mean(a, 0),
    "var_mean": lambda a, b: engine.var_mean(a, 0),
    "split": lambda a, b: a.split(2),
    "split_with_sizes": lambda a, b: a.split([1, 3]),
    "unbind": lambda a, b: a.unbind(0),
}
# multi_grad ops only a backward records (double backward), never a user's forward
INTERNAL = {"extremum_backward"}


def test_every_multi_grad_op_is_in_the_table():
    multi = {name for name, op in OPS.items() if op.multi_grad}
    assert multi - INTERNAL == set(CALLS)


def _leaves():
    return (engine.tensor(M, requires_grad=True), engine.tensor(SQ, requires_grad=True))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_the_walk_without_data_writes_the_leaves_the_real_walk_does(name):
    a, b = _leaves()
    outs = CALLS[name](a, b)
    outs = [o for o in outs if o.requires_grad]
    assert len(outs) > 1 and outs[0].grad_fn.op.name == name
    for k in range(len(outs)):
        root = outs[k].sum()
        written, _ = run_backward([root], None, retain_graph=True, create_graph=False)
        a.grad = b.grad = None
        root.backward(retain_graph=True)
        real = [t for t in (a, b) if t.grad is not None]
        assert {id(t) for t, _ in written} == {id(t) for t in real}, f"output {k}"
