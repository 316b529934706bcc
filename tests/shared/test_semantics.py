"""The autograd contract of API.md section 3, rule by rule, with PyTorch's message texts."""

from __future__ import annotations

import re
import sys
import threading
import warnings

import numpy as np
import pytest
from gradserve import engine as E
from gradserve.engine import AutogradError, InvalidArgumentError, TensorIndexError


def _seed_graph(input_requires_grad: bool):
    x = E.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=input_requires_grad)
    w1 = E.tensor(2.0, requires_grad=True)
    w2 = E.tensor(3.0, requires_grad=True)
    l1 = x * w1
    l2 = l1 + w2
    loss = l2.mean()
    return x, w1, w2, l1, l2, loss


# -- the seed example ---------------------------------------------------------------------------
@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_seed_example(input_requires_grad):
    x, w1, w2, l1, l2, loss = _seed_graph(input_requires_grad)
    assert loss.item() == 8.0
    loss.backward()
    assert w1.grad.item() == 2.5
    assert w2.grad.item() == 1.0
    if input_requires_grad:
        np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 0.5, np.float32))
        assert x.grad.dtype is E.float32
    else:
        assert x.grad is None
    for non_leaf in (l1, l2, loss):
        with pytest.warns(UserWarning, match="is not a leaf Tensor is being accessed"):
            assert non_leaf.grad is None
    assert loss.grad_fn.name() == "MeanBackward0"
    assert repr(loss.detach()) == "tensor(8.)"


def test_leaf_grad_access_does_not_warn():
    w = E.tensor(1.0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert w.grad is None
        assert E.tensor(1.0).grad is None


def test_leaves_and_non_leaves():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    assert x.is_leaf and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf and y.requires_grad
    c = E.tensor([1.0]) * 2  # nothing requires grad: the result is a leaf, as in torch
    assert c.is_leaf and not c.requires_grad and c.grad_fn is None


# -- accumulation, graph freeing, retain_graph ----------------------------------------------------
def test_grads_accumulate_until_zeroed():
    w = E.tensor(3.0, requires_grad=True)
    (w * 2).backward()
    (w * 5).backward()
    assert w.grad.item() == 7.0
    w.grad = None
    (w * 2).backward()
    assert w.grad.item() == 2.0
    w.grad.zero_()
    (w * w).backward()
    assert w.grad.item() == 6.0


def test_grad_accumulates_in_place_keeping_identity():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    g = x.grad
    (x * 3).sum().backward()
    assert x.grad is g and g.tolist() == [5.0, 5.0] and g._version == 1


def test_grads_are_writable_even_when_backward_broadcasts():
    # sum's backward expands a scalar: the leaf must not get a read-only broadcast view
    x = E.tensor([1.0, 2.0], requires_grad=True)
    w = E.tensor([[1.0, 2.0]], requires_grad=True)
    (x.sum() * 2 + w.mean(1).sum()).backward()
    x.grad.zero_()
    w.grad.mul_(2)
    assert x.grad.tolist() == [0.0, 0.0] and w.grad.tolist() == [[1.0, 1.0]]
    (x.sum() * 2).backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_assigning_grad_checks_like_torch():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(AutogradError, match=re.escape(
            "attempting to assign a gradient of size '[3]' to a tensor of size '[2]'")):
        x.grad = E.tensor([1.0, 1.0, 1.0])
    with pytest.raises(AutogradError, match="attempting to assign a gradient with dtype 'long "
                                            "int' to a tensor with grad_dtype 'Float'"):
        x.grad = E.tensor([1, 1])
    x.grad = E.tensor([1.0, 1.0])
    (x * 1).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_second_backward_raises_after_graph_is_freed():
    x, w1, w2, *_, loss = _seed_graph(True)
    loss.backward()
    with pytest.raises(AutogradError, match=re.escape(
            "Trying to backward through the graph a second time (or directly access saved "
            "tensors after they have already been freed).")):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    w = E.tensor(2.0, requires_grad=True)
    y = (w * w).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert w.grad.item() == 8.0
    with pytest.raises(AutogradError, match="backward through the graph a second time"):
        y.backward()


def test_graph_without_saved_tensors_can_run_twice():
    w = E.tensor(2.0, requires_grad=True)
    y = w + 1  # add saves nothing, so there is nothing to free (as torch)
    y.backward()
    y.backward()
    assert w.grad.item() == 2.0


# -- in-place changes and versions ----------------------------------------------------------------
def test_inplace_change_of_a_saved_tensor_raises_at_backward():
    a = E.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b * b
    b.add_(1)
    with pytest.raises(AutogradError) as err:
        c.sum().backward()
    msg = str(err.value)
    assert msg.startswith("one of the variables needed for gradient computation has been "
                          "modified by an inplace operation: [gradserve.FloatTensor [2]], "
                          "which is output 0 of Add, ")
    assert "is at version 1; expected version 0 instead." in msg


def test_inplace_change_of_a_saved_output_names_its_producer():
    a = E.tensor([1.0, 2.0], requires_grad=True)
    b = a.exp()  # exp saves its output
    b.mul_(2)
    with pytest.raises(AutogradError, match=r"output 0 of Exp, is at version 1; expected "
                                            r"version 0 instead"):
        b.sum().backward()


def test_inplace_change_of_a_saved_leaf():
    w = E.tensor([1.0, 2.0], requires_grad=True)
    x = E.tensor([3.0, 4.0])
    y = (w * x).sum()
    x.mul_(2)
    with pytest.raises(AutogradError, match=re.escape(
            "[gradserve.FloatTensor [2]] is at version 1; expected version 0 instead.")):
        y.backward()


def test_detach_shares_the_version_counter_so_changes_are_caught():
    a = E.tensor([1.0, 2.0], requires_grad=True)
    b = a.exp()
    d = b.detach()
    assert not d.requires_grad and d.grad_fn is None
    d.add_(1)  # same storage and counter as b
    assert b._version == 1
    np.testing.assert_allclose(b.detach().numpy(), np.exp([1.0, 2.0]) + 1, rtol=1e-6)
    with pytest.raises(AutogradError, match="is at version 1; expected version 0 instead"):
        b.sum().backward()


def test_data_does_not_share_the_version_counter_and_grad_uses_new_values():
    a = E.tensor([1.0, 2.0], requires_grad=True)
    b = a * 1
    c = b * b  # dc/db = 2b, read from b's storage at backward time
    b.data.add_(1)
    assert b._version == 0
    c.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [4.0, 6.0])  # 2 * (b + 1), silently


def test_data_setter_replaces_storage():
    a = E.tensor([1.0, 2.0], requires_grad=True)
    a.data = E.tensor([5.0, 6.0, 7.0])
    assert a.shape == (3,) and a.requires_grad and a.is_leaf


def test_inplace_on_leaf_requiring_grad_raises_except_under_no_grad():
    w = E.tensor([1.0, 2.0], requires_grad=True)
    for op in (lambda: w.add_(1), lambda: w.mul_(2), lambda: w.zero_(), lambda: w.fill_(1),
               lambda: w.copy_(E.ones(2)), lambda: w.clamp_(0, 1), lambda: w.relu_()):
        with pytest.raises(AutogradError, match=re.escape(
                "a leaf Variable that requires grad is being used in an in-place operation.")):
            op()
    assert w._version == 0
    with E.no_grad():
        assert w.sub_(1) is w
    assert w._version == 1 and w.requires_grad and w.is_leaf
    np.testing.assert_array_equal(w.detach().numpy(), [0.0, 1.0])
    with pytest.raises(AutogradError, match="a view of a leaf Variable that requires grad"):
        w[0].mul_(2)


INPLACE_METHODS = [
    ("add_", (1.0,)), ("sub_", (1.0,)), ("mul_", (2.0,)), ("div_", (2.0,)), ("zero_", ()),
    ("fill_", (3.0,)), ("copy_", (E.ones(3),)), ("clamp_", (0.0, 1.5)), ("relu_", ()),
    ("__iadd__", (1.0,)), ("__isub__", (1.0,)), ("__imul__", (2.0,)), ("__itruediv__", (2.0,)),
    ("add_", (E.ones(3),)), ("mul_", (E.tensor(2.0),)),
]


@pytest.mark.parametrize("method,args", INPLACE_METHODS, ids=[m for m, _ in INPLACE_METHODS])
def test_inplace_returns_self_and_bumps_version_by_one(method, args):
    t = E.tensor([1.0, -2.0, 3.0])
    out = getattr(t, method)(*args)
    assert out is t
    assert t._version == 1
    getattr(t, method)(*args)
    assert t._version == 2


def test_inplace_values_match_out_of_place():
    t = E.tensor([1.0, -2.0, 3.0])
    t.add_(1).mul_(2).sub_(E.tensor([1.0, 1.0, 1.0])).div_(4).clamp_(min=0)
    np.testing.assert_allclose(t.numpy(), np.clip(((np.array([1, -2, 3]) + 1) * 2 - 1) / 4,
                                                   0, None))
    t.add_(E.tensor(2.0), alpha=2)
    np.testing.assert_allclose(t.numpy(), [4.75, 4.0, 5.75])


def test_views_share_storage_and_version_counter():
    base = E.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    views = [base[0], base[:, 1:], base.t(), base.reshape(3, 2), base.view(6), base.transpose(0, 1),
             base.unsqueeze(0), base.flatten(), base[None, ..., ::2], base.permute(1, 0),
             base[1, 2]]
    for k, v in enumerate(views):
        before = base._version
        v.add_(1)
        assert base._version == before + 1 == v._version, k
    assert base[1, 2].item() == 6.0 + len(views) - 1  # every view but base[0] holds [1, 2]
    row = base[0]
    row.zero_()
    np.testing.assert_array_equal(base.numpy()[0], [0.0, 0.0, 0.0])
    fancy = base[E.tensor([0, 1])]  # advanced indexing copies, like torch
    fancy.add_(100)
    assert fancy._version == 1 and base.numpy().max() < 100


def test_inplace_on_expanded_tensor_raises():
    e = E.tensor([1.0, 2.0]).expand(3, 2)
    with pytest.raises(InvalidArgumentError, match="more than one element of the written-to "
                                                   "tensor refers to a single memory location"):
        e.add_(1)


def test_inplace_through_view_of_non_leaf_gives_copyslices():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y[0].mul_(3)
    assert y.grad_fn.name() == "CopySlices"
    np.testing.assert_array_equal(y.detach().numpy(), [6.0, 4.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 2.0])


def test_inplace_through_view_into_plain_buffer():
    w = E.tensor([3.0, 4.0], requires_grad=True)
    buf = E.zeros(3)
    buf[0:2].copy_(w)
    assert buf.requires_grad and not buf.is_leaf
    (buf * E.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])


def test_view_made_under_no_grad_cannot_be_modified_with_grad_on():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with E.no_grad():
        v = y[0]
    with pytest.raises(AutogradError, match="A view was created in no_grad mode"):
        v.mul_(E.tensor(2.0, requires_grad=True))


def test_inplace_shape_and_dtype_errors_leave_the_tensor_unchanged():
    t = E.tensor([1.0, 2.0])
    with pytest.raises(InvalidArgumentError, match=re.escape(
            "output with shape [2] doesn't match the broadcast shape [2, 2]")):
        t.add_(E.ones(2, 2))
    i = E.tensor([1, 2])
    with pytest.raises(InvalidArgumentError, match="result type Float can't be cast to the "
                                                   "desired output type Long"):
        i.add_(1.5)
    assert t._version == 0 and i._version == 0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_inplace_on_non_leaf_is_differentiable():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    w = E.tensor([3.0, 4.0], requires_grad=True)
    y = x * 1
    y.mul_(w)
    y.add_(w)
    assert y.grad_fn.name() == "AddBackward0"
    assert y.grad_fn.next_functions[0][0].name() == "MulBackward0"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 3.0])


# -- requires_grad ------------------------------------------------------------------------------
def test_requires_grad_only_for_floating_dtypes():
    with pytest.raises(AutogradError, match="Only Tensors of floating point and complex dtype "
                                            "can require gradients"):
        E.tensor([1, 2], requires_grad=True)
    with pytest.raises(AutogradError, match="only Tensors of floating point dtype can require "
                                            "gradients"):
        E.tensor([True]).requires_grad_()
    for factory in (E.zeros, E.ones, E.randn, E.rand):
        assert factory(2, dtype=E.float64, requires_grad=True).requires_grad
    with pytest.raises(AutogradError):
        E.zeros(2, dtype=E.int64, requires_grad=True)


def test_requires_grad_false_on_non_leaf_raises_true_is_a_no_op():
    y = E.tensor([1.0], requires_grad=True) * 2
    assert y.requires_grad_(True) is y
    with pytest.raises(AutogradError, match="you can only change requires_grad flags of leaf "
                                            "variables."):
        y.requires_grad_(False)
    leaf = E.tensor([1.0], requires_grad=True)
    assert leaf.requires_grad_(False) is leaf and not leaf.requires_grad


def test_integer_results_do_not_require_grad():
    x = E.tensor([1.0, 3.0, 2.0], requires_grad=True)
    for r in (x > 1, x.argmax(), x.max(0)[1], x.long(), x == x):
        assert not r.requires_grad and r.grad_fn is None


# -- backward's arguments -------------------------------------------------------------------------
def test_backward_on_non_scalar_needs_gradient():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(AutogradError, match="grad can be implicitly created only for scalar "
                                            "outputs"):
        (x * 2).backward()
    (x * 2).backward(E.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0])
    with pytest.raises(AutogradError, match=re.escape(
            "Mismatch in shape: grad_output[0] has a shape of torch.Size([3]) and output[0] has "
            "a shape of torch.Size([2]).")):
        (x * 2).backward(E.tensor([1.0, 2.0, 3.0]))


def test_backward_on_tensor_not_requiring_grad_raises():
    with pytest.raises(AutogradError, match="element 0 of tensors does not require grad and "
                                            "does not have a grad_fn"):
        E.tensor(1.0).backward()
    with pytest.raises(AutogradError, match="does not require grad"):
        (E.tensor([1.0]) * 2).sum().backward()


def test_backward_with_inputs_only_fills_those():
    a = E.tensor(1.0, requires_grad=True)
    b = E.tensor(2.0, requires_grad=True)
    (a * b).backward(inputs=[a])
    assert a.grad.item() == 2.0 and b.grad is None
    (a * b).backward(inputs=b)
    assert a.grad.item() == 2.0 and b.grad.item() == 1.0
    with pytest.raises(AutogradError, match=re.escape("`inputs` argument to `backward()` cannot "
                                                      "be empty.")):
        (a * b).backward(inputs=[])


def test_backward_inputs_can_name_a_non_leaf():
    a = E.tensor(3.0, requires_grad=True)
    h = a * 2
    (h * h).backward(inputs=[h])
    assert h._grad.item() == 12.0 and a.grad is None


def test_retain_grad_keeps_non_leaf_grad():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert not y.retains_grad
    y.retain_grad()
    assert y.retains_grad
    (y * y).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(y.grad.numpy(), [4.0, 8.0])
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 16.0])
    x.retain_grad()  # a no-op on leaves
    assert not x.retains_grad


def test_retained_grad_of_a_view_follows_inplace_ops():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    v = y[0]
    v.retain_grad()
    y.mul_(3)  # through the base: v's history is rebuilt and keeps retaining, as torch
    (v * v).sum().backward()
    assert v.grad.item() == 12.0 and x.grad.tolist() == [72.0, 0.0]

    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    v = y[0]
    v.retain_grad()
    v.mul_(3)  # through the view: the old value's hook must not fire
    (y * y).sum().backward(retain_graph=True)  # reaches x through y's CopySlices, not v
    assert v.grad is None and x.grad.tolist() == [72.0, 16.0]
    (v * 1).backward()
    assert v.grad.item() == 1.0


def test_retained_grad_follows_inplace_ops():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.mul_(3)  # y.grad is now the gradient w.r.t. y's new value, as torch
    y.sum().backward()
    assert y.grad.tolist() == [1.0, 1.0] and x.grad.tolist() == [6.0, 6.0]


def test_broadcasting_gradients_are_reduced_to_input_shapes():
    p = E.tensor([[1.0], [2.0]], requires_grad=True)
    q = E.tensor([1.0, 2.0, 3.0], requires_grad=True)
    s = E.tensor(2.0, requires_grad=True)
    ((p * q) * s).sum().backward()
    assert p.grad.shape == (2, 1) and q.grad.shape == (3,) and s.grad.shape == ()
    np.testing.assert_array_equal(p.grad.numpy(), [[12.0], [12.0]])
    np.testing.assert_array_equal(q.grad.numpy(), [6.0, 6.0, 6.0])
    assert s.grad.item() == 18.0
    b = E.tensor([1.0, 2.0], requires_grad=True)
    (E.ones(4, 3, 2) + b).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [12.0, 12.0])


def test_float64_scalar_tensor_keeps_float32_result_and_grads_keep_dtypes():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    d = E.tensor(3.0, dtype=E.float64, requires_grad=True)
    y = x * d
    assert y.dtype is E.float32
    y.sum().backward()
    assert x.grad.dtype is E.float32 and d.grad.dtype is E.float64
    assert d.grad.item() == 3.0


# -- autograd.grad -------------------------------------------------------------------------------
def test_autograd_grad_does_not_touch_dot_grad():
    a = E.tensor(1.0, requires_grad=True)
    b = E.tensor(2.0, requires_grad=True)
    (ga,) = E.autograd.grad(a * b, a)
    assert ga.item() == 2.0 and a.grad is None and not ga.requires_grad
    ga, gb = E.autograd.grad(a * b, [a, b])
    assert (ga.item(), gb.item()) == (2.0, 1.0)


def test_autograd_grad_with_grad_outputs():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    (g,) = E.autograd.grad(x * 3, x, grad_outputs=E.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(g.numpy(), [3.0, 30.0])
    (g,) = E.autograd.grad([x * 3, x * x], x, grad_outputs=[E.ones(2), E.ones(2)])
    np.testing.assert_array_equal(g.numpy(), [5.0, 7.0])


def test_autograd_grad_allow_unused():
    a = E.tensor(1.0, requires_grad=True)
    c = E.tensor(5.0, requires_grad=True)
    with pytest.raises(AutogradError, match="The differentiated Tensor at index 1 appears to "
                                            "not have been used in the graph. Set "
                                            "allow_unused=True"):
        E.autograd.grad(a * 2, [a, c])
    ga, gc = E.autograd.grad(a * 2, [a, c], allow_unused=True)
    assert ga.item() == 2.0 and gc is None


def test_autograd_grad_create_graph_gives_higher_derivatives():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    (g,) = E.autograd.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    np.testing.assert_array_equal(g.detach().numpy(), [3.0, 12.0])
    (h,) = E.autograd.grad(g.sum(), x, retain_graph=True)
    np.testing.assert_array_equal(h.numpy(), [6.0, 12.0])
    g.sum().backward()  # third route: backward through the gradient
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 12.0])


def test_autograd_grad_of_non_leaf_and_input_without_grad():
    a = E.tensor(2.0, requires_grad=True)
    h = a * a
    (gh,) = E.autograd.grad(h * 3, h)
    assert gh.item() == 3.0
    with pytest.raises(AutogradError, match="does not require grad"):
        E.autograd.grad(a * 2, E.tensor(1.0))


def test_autograd_backward_function():
    a = E.tensor(2.0, requires_grad=True)
    E.autograd.backward([a * 2, a * 3])
    assert a.grad.item() == 5.0
    with pytest.raises(AutogradError, match="got 2 tensors and 1 gradients"):
        E.autograd.backward([a * 2, a * 3], [E.tensor(1.0)])


# -- grad_fn names and next_functions -------------------------------------------------------------
def _names():
    x = E.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = E.tensor([[1.0], [2.0]], requires_grad=True)
    v = E.tensor([1.0, 2.0], requires_grad=True)
    return [
        (x.mean(), "MeanBackward0"), (x.mean(0), "MeanBackward1"), (x @ w, "MmBackward0"),
        (x.sum(), "SumBackward0"), (x.sum(1), "SumBackward1"), (x * 2, "MulBackward0"),
        (x + w, "AddBackward0"), (x - 1, "SubBackward0"), (1 - x, "RsubBackward1"),
        (x / 2, "DivBackward0"), (x ** 2, "PowBackward0"), (2 ** x, "PowBackward2"),
        (x ** x, "PowBackward1"), (v @ v, "DotBackward0"), (x @ v, "MvBackward0"),
        (x[0], "SelectBackward0"), (x[:, 1:], "SliceBackward0"), (x.t(), "TBackward0"),
        (x.reshape(4), "ViewBackward0"), (x.view(4), "ViewBackward0"),
        (x.exp(), "ExpBackward0"), (x.max(), "MaxBackward1"), (x.max(0)[0], "MaxBackward0"),
        (x.min(), "MinBackward1"), (x.min(1)[0], "MinBackward0"), (-x, "NegBackward0"),
        (x.var(), "VarBackward0"), (x.std(), "StdBackward0"), (x.prod(), "ProdBackward0"),
        (x.prod(0), "ProdBackward1"), (x.clamp(0), "ClampBackward1"),
        (x.clamp(max=1), "ClampBackward1"), (x.clamp(0, 1), "ClampBackward1"),
        (x.softmax(0), "SoftmaxBackward0"), (x.log_softmax(1), "LogSoftmaxBackward0"),
        (x.unsqueeze(0), "UnsqueezeBackward0"), (x[None], "UnsqueezeBackward0"),
        (x.permute(1, 0), "PermuteBackward0"), (x.transpose(0, 1), "TransposeBackward0"),
        (x.expand(3, 2, 2), "ExpandBackward0"), (E.cat([x, x]), "CatBackward0"),
        (E.stack([x, x]), "StackBackward0"), (E.where(x > 2, x, 0.0), "WhereBackward0"),
        (x.abs(), "AbsBackward0"), (x.relu(), "ReluBackward0"), (x.clone(), "CloneBackward0"),
        (x.double(), "ToCopyBackward0"), (x[E.tensor([0, 0])], "IndexBackward0"),
        (x.sigmoid(), "SigmoidBackward0"), (x.tanh(), "TanhBackward0"),
        (x.sqrt(), "SqrtBackward0"), (x.log(), "LogBackward0"), (x.sin(), "SinBackward0"),
        (x.cos(), "CosBackward0"), (x.reciprocal(), "ReciprocalBackward0"),
        (x.squeeze(), "SqueezeBackward0"), (x.squeeze(0), "SqueezeBackward1"),
    ]


@pytest.mark.parametrize("k", range(len(_names())))
def test_grad_fn_names(k):
    t, name = _names()[k]
    assert t.grad_fn.name() == name
    assert re.fullmatch(rf"<{name} object at 0x[0-9a-f]+>", repr(t.grad_fn))


def test_next_functions_show_accumulate_grad_for_leaves():
    x, w1, w2, l1, l2, loss = _seed_graph(True)
    (add, nr), = loss.grad_fn.next_functions
    assert add is l2.grad_fn and nr == 0 and add.name() == "AddBackward0"
    (mul, _), (acc_w2, _) = add.next_functions
    assert mul is l1.grad_fn
    assert acc_w2.name() == "AccumulateGrad" and acc_w2.variable is w2
    assert re.fullmatch(r"<AccumulateGrad object at 0x[0-9a-f]+>", repr(acc_w2))
    (acc_x, _), (acc_w1, _) = mul.next_functions
    assert acc_x.variable is x and acc_w1.variable is w1
    assert acc_w1 is (w1 * 1).grad_fn.next_functions[0][0]  # one AccumulateGrad per leaf
    assert acc_w1.next_functions == ()
    y = E.tensor([1.0]) * w1  # inputs that need no grad show up as None
    assert y.grad_fn.next_functions[0] == (None, 0)


# -- no_grad and grad mode ------------------------------------------------------------------------
def test_no_grad_results_have_no_history():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    with E.no_grad():
        y = x * 2
        assert not E.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert E.is_grad_enabled()
    with E.no_grad():
        with E.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad


def test_grad_mode_decorators_and_set_grad_enabled():
    x = E.tensor(1.0, requires_grad=True)

    @E.no_grad()
    def f():
        return x * 2

    assert not f().requires_grad and E.is_grad_enabled()
    E.set_grad_enabled(False)
    try:
        assert not E.is_grad_enabled()
    finally:
        E.set_grad_enabled(True)
    with E.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert E.is_grad_enabled()

    @E.set_grad_enabled(False)
    def g():
        return x * 2

    assert E.is_grad_enabled() and not g().requires_grad


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError), E.no_grad():
        raise ValueError
    assert E.is_grad_enabled()


def test_grad_mode_is_thread_local():
    inside, seen = threading.Event(), {}

    def other():
        inside.wait()
        x = E.tensor(1.0, requires_grad=True)
        seen["enabled"] = E.is_grad_enabled()
        seen["requires_grad"] = (x * 2).requires_grad

    worker = threading.Thread(target=other)
    worker.start()
    with E.no_grad():
        inside.set()
        worker.join()
    assert seen == {"enabled": True, "requires_grad": True}

    def disable():
        with E.no_grad():
            seen["worker"] = E.is_grad_enabled()

    t = threading.Thread(target=disable)
    t.start()
    t.join()
    assert seen["worker"] is False and E.is_grad_enabled()


# -- values --------------------------------------------------------------------------------------
def test_item():
    assert E.tensor(2.5).item() == 2.5 and type(E.tensor(2.5).item()) is float
    assert E.tensor([3]).item() == 3 and type(E.tensor([3]).item()) is int
    assert type(E.tensor(True).item()) is bool
    assert type(E.tensor(1.0, requires_grad=True).item()) is float
    with pytest.raises(AutogradError, match="a Tensor with 2 elements cannot be converted to "
                                            "Scalar"):
        E.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="a Tensor with 0 elements"):
        E.zeros(0).item()


def test_no_numpy_warnings_for_inf_and_nan():
    x = E.tensor([0.0, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.log() * 0 + x.sqrt() + 1 / x + E.tensor([1e30]) * 1e30
        y.sum().backward()
    assert np.isnan(x.grad.numpy()[0])


def test_var_without_degrees_of_freedom_warns_like_torch():
    with pytest.warns(UserWarning, match=re.escape("var(): degrees of freedom is <= 0")):
        v = E.tensor([1.0]).var()
    assert np.isnan(v.item())


def test_numpy_and_tolist():
    x = E.tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(AutogradError, match=re.escape("Can't call numpy() on Tensor that "
                                                      "requires grad. Use tensor.detach()"
                                                      ".numpy() instead.")):
        x.numpy()
    assert x.detach().numpy().dtype == np.float32
    assert x.tolist() == [[1.0, 2.0]]


# -- randomness ----------------------------------------------------------------------------------
def test_manual_seed_reproduces_streams():
    E.manual_seed(1234)
    a = E.randn(5).numpy()
    b = E.rand(2, 2).numpy()
    E.manual_seed(1234)
    np.testing.assert_array_equal(E.randn(5).numpy(), a)
    np.testing.assert_array_equal(E.rand(2, 2).numpy(), b)
    assert not np.array_equal(E.randn(5).numpy(), a)


def test_generators_never_share_streams():
    g1, g2 = E.Generator(7), E.Generator(7)
    E.manual_seed(0)
    default_first = E.randn(4).numpy()
    E.manual_seed(0)
    with E.using_generator(g1):
        first = E.randn(4).numpy()
        second = E.randn(4).numpy()
    with E.using_generator(g2):  # g1's draws did not advance g2
        np.testing.assert_array_equal(E.randn(4).numpy(), first)
    # and neither advanced the default generator
    np.testing.assert_array_equal(E.randn(4).numpy(), default_first)
    assert not np.array_equal(first, second)
    g1.manual_seed(7)
    with E.using_generator(g1):
        np.testing.assert_array_equal(E.randn(4).numpy(), first)


def test_generator_context_is_per_thread():
    g = E.Generator(3)
    with E.using_generator(E.Generator(3)):
        expected = E.randn(3).numpy()
    ready, done, seen = threading.Event(), threading.Event(), {}

    def other():
        ready.wait()
        seen["other"] = E.randn(3).numpy()  # the default stream, not g's
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with E.using_generator(g):
        ready.set()
        done.wait()
        np.testing.assert_array_equal(E.randn(3).numpy(), expected)
    t.join()
    assert not np.array_equal(seen["other"], expected)


# -- devices -------------------------------------------------------------------------------------
def test_canonical_device():
    assert E.canonical_device(None) == "cpu"
    assert E.canonical_device("cpu") == "cpu"
    assert E.canonical_device("cuda") == "cuda:0"
    assert E.canonical_device("cuda:1") == "cuda:1"
    with pytest.raises(InvalidArgumentError, match="Expected one of cpu, cuda device type at "
                                                   "start of device string: tpu"):
        E.canonical_device("tpu")
    with pytest.raises(InvalidArgumentError, match="Invalid device string: 'cuda:x'"):
        E.canonical_device("cuda:x")
    with pytest.raises(InvalidArgumentError, match="device string"):
        E.tensor([1.0]).to("tpu")


def test_mixing_devices_is_an_error():
    cpu = E.tensor([1.0, 2.0])
    # A tensor that claims another device: the dispatcher must refuse before computing.
    fake = E.Tensor(np.array([1.0, 2.0], np.float32), "cuda:0")
    with pytest.raises(InvalidArgumentError, match="Expected all tensors to be on the same "
                                                   "device, but found at least two devices, "
                                                   "cpu and cuda:0!"):
        cpu + fake


def test_to_and_casts():
    x = E.tensor([1.5, 2.5], requires_grad=True)
    assert x.to("cpu") is x and x.float() is x and x.to(E.float32) is x
    d = x.double()
    assert d.dtype is E.float64 and d.grad_fn.name() == "ToCopyBackward0"
    assert x.to("float64").dtype is E.float64 and x.to("cpu", E.float64).dtype is E.float64
    (d * d).sum().backward()
    assert x.grad.dtype is E.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 5.0])
    n = x.long()
    assert n.dtype is E.int64 and n.tolist() == [1, 2] and not n.requires_grad
    assert x.detach().bool().tolist() == [True, True]
    c = x.cpu()
    assert c is x


@pytest.mark.gpu
def test_cuda_round_trip():
    if E.cuda_device_count() == 0:
        pytest.skip("no CUDA device")
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x.cuda()
    assert y.device == "cuda:0"
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


# -- errors --------------------------------------------------------------------------------------
def test_error_types():
    assert issubclass(AutogradError, RuntimeError)
    assert issubclass(AutogradError, E.GradserveError)
    assert issubclass(InvalidArgumentError, AutogradError)
    assert issubclass(TensorIndexError, IndexError) and issubclass(TensorIndexError,
                                                                   InvalidArgumentError)
    with pytest.raises(InvalidArgumentError, match="The size of tensor a \\(3\\) must match the "
                                                   "size of tensor b \\(4\\) at non-singleton "
                                                   "dimension 1"):
        E.ones(2, 3) + E.ones(4)
    with pytest.raises(InvalidArgumentError, match=re.escape(
            "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x2)")):
        E.ones(2, 3) @ E.ones(4, 2)
    with pytest.raises(InvalidArgumentError, match="unknown op 'nope'"):
        E.get_op("nope")
    with pytest.raises(InvalidArgumentError, match="mean\\(\\): could not infer output dtype"):
        E.tensor([1, 2]).mean()
    with pytest.raises(InvalidArgumentError, match=re.escape(
            "shape '[4]' is invalid for input of size 6")):
        E.ones(2, 3).reshape(4)
    with pytest.raises(InvalidArgumentError, match="unknown dtype"):
        E.zeros(2, dtype="float16")
    with pytest.raises(TensorIndexError, match="index 5 is out of bounds for dimension 0 with "
                                               "size 2"):
        E.ones(2, 3)[5]
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 0 with size 2"):
        E.ones(2, 3)[E.tensor([7])]
    with pytest.raises(IndexError, match=re.escape(
            "Dimension out of range (expected to be in range of [-2, 1], but got 4)")):
        E.ones(2, 3).sum(4)
    with pytest.raises(InvalidArgumentError, match="Sizes of tensors must match except in "
                                                   "dimension 0"):
        E.cat([E.ones(2, 3), E.ones(2, 4)])


def test_engine_consistent_after_errors():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(InvalidArgumentError):
        y + E.ones(3)
    with pytest.raises(AutogradError):
        (x * 2).backward()
    z = y * y
    y.add_(1)  # breaks z's graph
    with pytest.raises(AutogradError, match="inplace operation"):
        z.sum().backward()
    assert E.is_grad_enabled()
    with pytest.raises(AutogradError), E.no_grad():
        E.autograd.grad(z.sum(), x)
    assert E.is_grad_enabled()
    # a fresh graph over the same leaves works, and grads are right
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    a = E.tensor([1.0, 2.0])
    with pytest.raises(InvalidArgumentError):
        a.mul_(E.ones(3))
    assert a._version == 0 and a.tolist() == [1.0, 2.0]


def test_create_graph_backward_error_restores_grad_mode():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.mul_(2)
    with pytest.raises(AutogradError):
        y.sum().backward(create_graph=True)
    assert E.is_grad_enabled()


# -- graphs --------------------------------------------------------------------------------------
def test_deep_graph_backward_is_iterative():
    limit = sys.getrecursionlimit()
    x = E.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0 + 0.0
    assert 40000 > limit
    y.backward()
    assert x.grad.item() == 1.0
    del y  # freeing a deep graph must not recurse either


def test_shared_subgraph_runs_once_with_summed_grads():
    x = E.tensor(3.0, requires_grad=True)
    h = x * x
    (h + h * 2 + h.exp() * 0).backward()
    assert x.grad.item() == 18.0


def test_multiple_roots_and_diamond():
    x = E.tensor(2.0, requires_grad=True)
    a = x * 3
    b = x * 4
    E.autograd.backward([a, a * b])
    # d(a)/dx + d(ab)/dx = 3 + (3*8 + 4*6) = 51
    assert x.grad.item() == 51.0


GRAPHS = {
    "backward": lambda x: (x * 2).sum().backward(),
    "saved-outputs-no-backward": lambda x: x.exp().tanh().sigmoid().relu().softmax(0),
    "create-graph-grad": lambda x: E.autograd.grad((x ** 3).sum(), x, create_graph=True),
    "inplace-through-view": lambda x: (x * 1)[0].mul_(2),
    "retain-graph": lambda x: (x.exp() * x).sum().backward(retain_graph=True),
}


@pytest.mark.parametrize("name", GRAPHS)
def test_graphs_are_freed_without_the_cycle_collector(name):
    # A server frees tensors by dropping references; nothing may wait for gc.collect().
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        x = E.tensor([1.0, 2.0], requires_grad=True)
        result = GRAPHS[name](x)
        refs = [weakref.ref(x)]
        del x, result
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_grad_is_not_an_alias_of_the_seed_gradient():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    y = E.tensor([3.0, 4.0], requires_grad=True)
    seed = E.tensor([1.0, 1.0])
    (x + y).backward(seed)
    x.grad.add_(10)
    assert y.grad.tolist() == [1.0, 1.0] and seed.tolist() == [1.0, 1.0]


# -- factories -----------------------------------------------------------------------------------
def test_factories():
    assert E.tensor([1.0]).dtype is E.float32 and E.tensor([1]).dtype is E.int64
    assert E.tensor(np.array([1.0])).dtype is E.float64  # numpy's dtype is kept, as torch
    assert E.zeros(2, 3).shape == (2, 3) and E.zeros((2, 3)).shape == (2, 3)
    assert E.full((2,), 7).dtype is E.int64 and E.full((2,), 7.0).dtype is E.float32
    assert E.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert E.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert E.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert E.zeros_like(E.ones(2, dtype=E.float64)).dtype is E.float64
    assert E.ones_like(E.ones(3)).tolist() == [1.0, 1.0, 1.0]
    arr = np.zeros(3, np.float32)
    t = E.from_numpy(arr)
    arr[0] = 5
    assert t.tolist()[0] == 5.0
    with pytest.raises(InvalidArgumentError, match="negative dimension"):
        E.zeros(-1)
