"""The autograd bookkeeping a proxy mirrors locally: in-place rules, versions, views, detach,
.data, requires_grad_, retain_grad and .grad without a round trip. Each check is compared
with the engine where the engine defines the answer."""

from __future__ import annotations

import warnings

import gradserve as gs
import pytest
from gradserve import engine
from gradserve._compile import whole_batches
from gradserve._session import OVERLAP_OPS


@pytest.fixture(params=["engine", "remote"])
def make(request, s):
    return engine.tensor if request.param == "engine" else s.tensor


def test_inplace_on_leaf_requiring_grad_raises(make):
    w = make([1., 2.], requires_grad=True)
    with pytest.raises(gs.AutogradError, match="a leaf Variable that requires grad"):
        w.add_(1)
    with gs.no_grad():
        assert w.mul_(2) is w
    assert w._version == 1 and w.is_leaf and w.requires_grad


def test_inplace_bumps_version_by_one_and_records(make):
    x = make([1., 2.], requires_grad=True)
    y = x * 1
    assert y._version == 0
    y += 1
    y.mul_(x)
    y.clamp_(min=0.5).relu_()
    assert y._version == 4
    assert y.grad_fn.name() == "ReluBackward0"
    assert y.grad_fn.next_functions[0][0].name().startswith("Clamp")


def test_inplace_result_type_and_shape_checks(make):
    i = make([1, 2])
    with pytest.raises(gs.InvalidArgumentError, match="result type Float can't be cast"):
        i.add_(1.5)
    f = make([1., 2.])
    with pytest.raises(gs.InvalidArgumentError, match="doesn't match the broadcast shape"):
        f.add_(make([[1., 2.], [3., 4.]]))
    assert i._version == 0 and f._version == 0


def test_inplace_makes_a_non_grad_tensor_part_of_the_graph(make):
    w = make(2.0, requires_grad=True)
    buf = make([1., 2.])
    buf.mul_(w)
    assert buf.requires_grad and not buf.is_leaf and buf.grad_fn.name() == "MulBackward0"


def test_views_share_the_version_counter_data_does_not(make):
    x = make([[1., 2.], [3., 4.]])
    v = x[0]
    r = x.reshape(4)
    d = x.detach()
    data = x.data
    v.zero_()
    assert x._version == v._version == r._version == d._version == 1
    data.fill_(3.0)
    assert data._version == 1 and x._version == 1


def test_inplace_through_a_view_of_a_graph_tensor(make):
    a = make([[1., 2.], [3., 4.]], requires_grad=True)
    b = a * 1
    row = b[0]
    row.mul_(2)
    assert b.grad_fn.name() == "torch::autograd::CopySlices"
    assert row.grad_fn.name() == engine_row_name()
    assert row._version == b._version == 1


def engine_row_name():
    a = engine.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    b = a * 1
    row = b[0]
    row.mul_(2)
    return row.grad_fn.name()


def test_view_of_leaf_and_no_grad_view_errors(make):
    a = make([1., 2.], requires_grad=True)
    with pytest.raises(gs.AutogradError, match="a view of a leaf Variable"):
        a[0:1].add_(1)
    b = a * 1
    with gs.no_grad():
        v = b[0:1]
    with pytest.raises(gs.AutogradError, match="created in no_grad mode"):
        v.add_(a[0:1] * 1)


def test_requires_grad_rules(make):
    x = make([1., 2.])
    assert x.requires_grad_() is x and x.requires_grad
    y = x * 2
    y.requires_grad_(True)  # a no-op on non-leaves
    with pytest.raises(gs.AutogradError, match="only change requires_grad flags of leaf"):
        y.requires_grad_(False)
    with pytest.raises(gs.AutogradError, match="floating point"):
        make([1, 2]).requires_grad_()
    with gs.no_grad():
        z = x * 2
    assert not z.requires_grad and z.grad_fn is None


def test_retain_grad_and_detach_(make):
    x = make([1., 2.], requires_grad=True)
    y = x * 2
    assert not y.retains_grad
    y.retain_grad()
    assert y.retains_grad
    x.retain_grad()
    assert not x.retains_grad  # leaves keep their grad anyway
    with pytest.raises(gs.AutogradError, match="can't retain_grad"):
        make([1.]).retain_grad()
    z = y.detach_()
    assert z is y and y.is_leaf and not y.requires_grad
    with pytest.raises(gs.AutogradError, match="Can't detach views in-place"):
        (x * 1)[0].detach_()


def test_grad_is_none_without_a_round_trip(s, client):
    x = s.tensor([1., 2.], requires_grad=True)
    assert x.grad is None
    y = x * 2
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert y.grad is None
    y.retain_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert y.grad is None
    assert s.stats.requests == 0 and s.stats.waits == 0  # nothing was sent


def test_grad_setter(s):
    x = s.tensor([1., 2.], requires_grad=True)
    g = s.ones(2)
    x.grad = g
    assert x.grad is g
    x.grad = None
    assert x.grad is None
    with pytest.raises(gs.InvalidArgumentError, match="assign a gradient of size '\\[3\\]'"):
        x.grad = s.ones(3)
    with pytest.raises(gs.InvalidArgumentError, match="assign a gradient with dtype 'double'"):
        x.grad = s.ones(2, dtype=gs.float64)
    commands = [op[0] for op in s._ops]
    assert commands.count("set_grad") == 2


def test_numpy_refuses_tensors_that_require_grad(s):
    with pytest.raises(gs.AutogradError, match=r"Use tensor.detach\(\).numpy\(\)"):
        s.tensor([1.], requires_grad=True).numpy()
    with pytest.raises(gs.InvalidArgumentError, match="cannot be converted to Scalar"):
        s.ones(2).item()


def test_backward_checks_are_local(s, client):
    x = s.tensor([1., 2.], requires_grad=True)
    with pytest.raises(gs.AutogradError, match="only for scalar outputs"):
        (x * 2).backward()
    with pytest.raises(gs.AutogradError, match="does not require grad"):
        s.ones(1).sum().backward()
    with pytest.raises(gs.AutogradError, match="Mismatch in shape"):
        (x * 2).backward(s.ones(3))
    assert s.stats.requests == 0  # nothing was sent


def test_deepcopy_of_a_leaf(s):
    import copy

    w = s.tensor([1., 2.], requires_grad=True)
    w2 = copy.deepcopy(w)
    assert w2 is not w and w2.is_leaf and w2.requires_grad and w2.id != w.id
    assert s._ops[-2][0] == "clone" and s._ops[-1][0] == "requires_grad_"
    with pytest.raises(gs.AutogradError, match="graph leaves"):
        copy.deepcopy(w * 2)


def test_backward_is_an_op_among_ops(s):
    w = s.tensor([1., 2.], requires_grad=True)
    (w * w).sum().backward()
    assert [e[0] for e in s._ops][-1] == "backward" and s.stats.requests == 0
    assert w.grad is not None and s.stats.waits == 0  # known locally: the graph reaches w
    big = s.ones(1 << 18, requires_grad=True)
    with whole_batches():  # (batches never cut by the clock)
        (big * 2).sum().backward()  # enough work to be worth sending ahead of what follows,
        with gs.no_grad():
            w.add_(1).mul_(2)  # but a short optimizer step rides with it
            assert s.stats.requests == 0
            for _ in range(OVERLAP_OPS - 2):  # a long one is sent on while it is recorded
                w.add_(1)
    assert s._ops == [] and s.stats.requests == 1 and s.stats.waits == 0
