"""Issue 16's further torch functions against PyTorch, on engine tensors and on a live remote
session (the `M` fixture), the way test_torch_surface.py checks API.md section 5: values,
dtypes, shapes, grad_fn names, then one backward's input gradients; errors of torch's type
with torch's text.
"""

from __future__ import annotations

import warnings

import gradserve as gs
import numpy as np
import pytest
import torch

from .test_torch_surface import Err, Expr, _dtype, _raised, _run, _values, ints, pos, r, unit

EXPRS: list[Expr] = []


def expr(id, fn, *inputs, grad=True):
    EXPRS.append(Expr(id, fn, tuple(np.asarray(a) for a in inputs), grad))


def _F(M):
    return torch.nn.functional if M is torch else gs.nn.functional


# composed here where torch has one kernel, so their grad_fn names differ: soft_margin_loss
# (torch's SoftMarginLossBackward0; here the reduction's node), multi_margin_loss (likewise)
NAMED_APART = {"F-hinge-soft-margin",
               "F-multi_margin_loss", "nn-layers"}
NANS = np.array([[1.0, np.nan, -np.inf], [np.inf, -2.0, 0.5]], np.float32)

expr("select", lambda M, a: (a.select(0, 1), a.select(1, -1), M.select(a, 2, 0)), r(3, 4, 2))
expr("clamp-tensors", lambda M, a, lo, hi: (a.clamp(lo, hi), a.clamp(min=lo), a.clamp(max=hi),
                                            M.clamp(a, lo), a.clip(max=hi)),
     r(3, 4), r(4) - 0.5, r(3, 1) + 0.5)
expr("clamp-tensors-int", lambda M, a, lo: (a.clamp(lo, lo + 3), a.clamp(min=lo.double())),
     ints(3, 4), ints(4, lo=-3, hi=0))
expr("clamp_-tensor", lambda M, a, lo: a.clone().clamp_(min=lo), r(3, 4), r(4))
expr("stacks", lambda M, a, b, c: (M.hstack([a, b]), M.vstack([a, b]), M.hstack([c, c]),
                                   M.vstack([c, c]), M.dstack([a, b]), M.column_stack([c, c]),
                                   M.row_stack((c, c)), M.hstack((a[0, 0], c))),
     r(2, 3), r(2, 3), r(3))
expr("atleast", lambda M, a, b: (M.atleast_1d(a), M.atleast_2d(b), M.atleast_3d(b),
                                 M.atleast_3d(b[0]), M.atleast_2d(a, b)),
     np.float32(2.0), r(2, 3))
expr("addcmul-addcdiv", lambda M, a, b, c: (M.addcmul(a, b, c), a.addcmul(b, c, value=0.5),
                                            M.addcdiv(a, b, c, value=-2), a.addcdiv(b, c)),
     r(2, 3), r(3), pos(2, 1))
expr("addcmul_-int", lambda M, a, b: a.clone().addcmul_(b, b, value=2), ints(2, 3), ints(3))
expr("addcdiv_", lambda M, a, b, c: a.clone().addcdiv_(b, c, value=3), r(2, 3), r(2, 3),
     pos(3))
expr("meshgrid", lambda M, a, b, c: (M.meshgrid(a, b, indexing="ij"),
                                     M.meshgrid(a, b, c, indexing="xy"),
                                     M.meshgrid([a, b], indexing="xy"),
                                     M.meshgrid(a, indexing="ij")),
     r(3), r(2), r(4))
expr("diag", lambda M, a, v: (M.diag(a), a.diag(1), a.diag(-2), M.diag(v), v.diag(2),
                              v.diag(-1)), r(3, 4), r(3))
expr("diag-1d-diag_embed", lambda M, v, a: (M.diag(v), v.diag(2), v.diag(-1), M.diag_embed(a),
                                           a.diag_embed(1), M.diag_embed(a, -2, 0, 2),
                                           a.diag_embed(0, 2, 0), M.diag_embed(v)),
     r(3), r(2, 3))
expr("diag_embed-int", lambda M, a: M.diag_embed(a, 1), ints(2, 2), grad=False)
expr("nan_to_num", lambda M, a: (a.nan_to_num(), M.nan_to_num(a, nan=2.0, posinf=9.0),
                                 a.nan_to_num(neginf=-7.0), M.nan_to_num(a.double())), NANS)
expr("nan_to_num-int", lambda M, a: M.nan_to_num(a), ints(4), grad=False)
expr("diff", lambda M, a, p: (a.diff(), M.diff(a, dim=0), a.diff(n=2, dim=1),
                              a.diff(prepend=p), a.diff(dim=0, append=a[:1]), a.diff(n=5)),
     r(3, 4), r(3, 2))
expr("diff-bool-int", lambda M, a: (a.diff(), (a > 0).diff(), a.diff(n=0)), ints(2, 5),
     grad=False)
expr("std_mean-var_mean", lambda M, a: (M.std_mean(a), M.var_mean(a, 1), M.std_mean(a, 0, True),
                                        M.var_mean(a, (0, 1), correction=0, keepdim=True)),
     r(3, 4))
expr("std_mean-one-output", lambda M, a: (M.std_mean(a, 1)[0], M.var_mean(a, 0)[1],
                                          M.var_mean(a, unbiased=False)), r(3, 4))
expr("logit", lambda M, a: (a.logit(), M.logit(a, eps=0.2), a.double().logit(1e-3)),
     unit(3, 4) * 0.5 + 0.5)
expr("xlogy", lambda M, a, b: (M.xlogy(a, b), a.xlogy(2.5), M.xlogy(a.abs(), b.abs()),
                               M.xlogy(2.0, b.abs())),
     np.array([[0.0, 1.5, -2.0], [0.5, 0.0, 3.0]], np.float32),
     np.array([0.5, np.nan, 2.0], np.float32))
expr("xlogy-int", lambda M, a, b: M.xlogy(a, b), ints(3, lo=0, hi=4), ints(3, lo=1, hi=5),
     grad=False)
expr("hypot-exp2", lambda M, a, b: (M.hypot(a, b), a.hypot(b[0]), a.exp2(), M.exp2(b)),
     r(2, 3), r(2, 3))
expr("exp2-int", lambda M, a: M.exp2(a), ints(4), grad=False)
expr("sinc-dist", lambda M, a, b: (a.sinc(), M.sinc(a * 0), M.dist(a, b), a.dist(b, 1),
                                  a.dist(b, 3.5), M.dist(a, b[0], float("inf")),
                                  a.dist(b, -float("inf"))),
     r(2, 3), r(2, 3))
expr("dist-0", lambda M, a, b: M.dist(a, b, 0), r(2, 3), np.zeros(3, np.float32), grad=False)
expr("sinc-int", lambda M, a: M.sinc(a), ints(5), grad=False)
expr("sum_to_size", lambda M, a: (a.sum_to_size(3, 1), a.sum_to_size((1, 4)), a.sum_to_size(4),
                                  a.sum_to_size(2, 3, 4), a.sum_to_size([1])), r(2, 3, 4))
TIED = np.array([[1.0, 3.0, 3.0, 2.0, 5.0], [2.0, 2.0, -1.0, 2.0, 0.0]], np.float32)
expr("cummax-cummin", lambda M, a: (a.cummax(1), M.cummin(a, 1), a.cummax(0), a.cummin(-1),
                                    a[0, 0].cummax(0)), TIED)
expr("cummax-nan", lambda M, a: (a.cummax(1), a.cummin(1)), NANS)
expr("cummax-int", lambda M, a: (a.cummax(0), M.cummin(a, 1)), ints(3, 4), grad=False)
expr("logcumsumexp", lambda M, a: (a.logcumsumexp(1), M.logcumsumexp(a * 30, 0),
                                   a.double().logcumsumexp(-1), a[0, 0].logcumsumexp(0)),
     r(3, 4))
expr("in-place", lambda M, a, b: (a * 1).exp2_() + (a * 1).sinc_() + (a.sigmoid() * 1).logit_()
     + (a * 1).logit_(0.3) + (a * 1).hypot_(b) + (b.abs() + 1).xlogy_(a.abs() + 0.5)
     + (a * 1).nan_to_num_(posinf=3.0), r(2, 3), r(2, 3))
expr("nan_to_num_", lambda M, a: (a * 1).nan_to_num_(nan=1.5, neginf=-2.0), NANS)
expr("nansum", lambda M, a: (a.nansum(), M.nansum(a, 1), a.nansum((0, 1), keepdim=True),
                             a.nansum(dtype=M.float64)), NANS[:, :2])
expr("nansum-int", lambda M, a: (a.nansum(), M.nansum(a, 0)), ints(3, 2), grad=False)
expr("tensor_split", lambda M, a: (M.tensor_split(a, 3), a.tensor_split(2, dim=1),
                                   a.tensor_split([1, 4], 1), a.tensor_split((1, -1)),
                                   a.tensor_split(M.tensor([0, 2]), 0)), r(3, 5))
expr("F-selu-celu", lambda M, a: (_F(M).selu(a), _F(M).celu(a), _F(M).celu(a, 0.5),
                                  _F(M).celu(a, alpha=2.0)), r(3, 4) * 2)
expr("F-soft", lambda M, a: (_F(M).softsign(a), _F(M).tanhshrink(a), _F(M).glu(a),
                             _F(M).glu(a, 0), _F(M).softshrink(a), _F(M).softshrink(a, 1.0),
                             _F(M).hardshrink(a), _F(M).hardshrink(a, 0.2),
                             _F(M).threshold(a, 0.1, 20.0)), r(4, 6) * 2)
expr("F-instance_norm", lambda M, x, w, b: (_F(M).instance_norm(x), _F(M).instance_norm(
    x, weight=w, bias=b, eps=1e-3), _F(M).instance_norm(x[:, :, :, 0])), r(2, 3, 4, 5), r(3),
     r(3))
expr("F-adaptive_avg_pool1d", lambda M, x: (_F(M).adaptive_avg_pool1d(x, 3),
                                            _F(M).adaptive_avg_pool1d(x[0], (2,)),
                                            _F(M).adaptive_avg_pool1d(x, 7)), r(2, 3, 7))
def _margins(M, x, y):
    y = y.detach()  # a target that needs a gradient is refused by soft_margin_loss (tested)
    return (_F(M).hinge_embedding_loss(x, y),
            _F(M).hinge_embedding_loss(x, y, 0.5, reduction="sum"),
            _F(M).hinge_embedding_loss(x, y, reduction="none"), _F(M).soft_margin_loss(x, y),
            _F(M).soft_margin_loss(x, y, reduction="none"))


expr("F-hinge-soft-margin", _margins, r(3, 4), np.sign(r(3, 4)))
expr("F-multi_margin_loss", lambda M, x, t, w: (
    _F(M).multi_margin_loss(x, t), _F(M).multi_margin_loss(x, t, p=2, margin=0.5),
    _F(M).multi_margin_loss(x, t, weight=w.detach(), reduction="none"),
    _F(M).multi_margin_loss(x, t, reduction="sum"), _F(M).multi_margin_loss(x[0], t[0])),
     r(3, 5), np.array([0, 4, 2]), pos(5))
def _layers(M, x, t):
    nn, t = M.nn, t.detach()  # t: -1 or 1
    acts = [nn.SELU(), nn.CELU(0.5), nn.Softsign(), nn.Tanhshrink(), nn.GLU(0),
            nn.Softshrink(0.3), nn.Hardshrink(), nn.Threshold(0.1, -1.0)]
    classes = (t[:, 0] + 1).long()  # 0 or 2
    losses = (nn.HingeEmbeddingLoss(0.5)(x, t), nn.SoftMarginLoss(reduction="sum")(x, t),
              nn.MultiMarginLoss(p=2, weight=M.ones(3))(x, classes))
    return (*(m(x) for m in acts), *losses)


expr("nn-layers", _layers, r(4, 3), np.where(r(4, 3) > 0, 1.0, -1.0).astype(np.float32))
expr("F-threshold-int", lambda M, a: _F(M).threshold(a, 1, 5), ints(5), grad=False)


@pytest.mark.filterwarnings("ignore:To copy construct")
@pytest.mark.parametrize("e", EXPRS, ids=[e.id for e in EXPRS])
def test_parity(M, e: Expr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, theirs, their_grads = _run(torch, e)
        _, ours, our_grads = _run(M, e)
    assert len(ours) == len(theirs)
    for k, (o, t) in enumerate(zip(ours, theirs, strict=True)):
        assert isinstance(o, gs.Tensor), f"output {k}"
        assert o.shape == tuple(t.shape) and _dtype(o) == _dtype(t), f"output {k}"
        np.testing.assert_allclose(_values(o).astype(np.float64),
                                   _values(t).astype(np.float64), rtol=1e-5, atol=1e-6,
                                   equal_nan=True, err_msg=f"output {k}")
        assert o.requires_grad == t.requires_grad, f"output {k}"
        if t.grad_fn is not None and e.id not in NAMED_APART:
            assert o.grad_fn.name() == t.grad_fn.name(), f"output {k}"
    if their_grads is None:
        assert our_grads is None
        return
    for k, (g, tg) in enumerate(zip(our_grads, their_grads, strict=True)):
        assert (g is None) == (tg is None), f"input {k}"
        if g is not None:
            assert _dtype(g) == _dtype(tg)
            np.testing.assert_allclose(_values(g), _values(tg), rtol=1e-4, atol=1e-5,
                                       equal_nan=True, err_msg=f"gradient of input {k}")


ERRS = [
    Err("select-range", lambda M, a: a.select(0, 5), (r(3, 4),),
        "select(): index 5 out of range for tensor of size [3, 4] at dimension 0"),
    Err("select-0d", lambda M, a: a.select(0, 0), (np.float32(1),),
        "select() cannot be applied to a 0-dim tensor."),
    Err("hstack-empty", lambda M: M.hstack([]), (), "hstack expects a non-empty TensorList"),
    Err("vstack-tensor", lambda M, a: M.vstack(a), (r(2, 2),), None),
    Err("diag-3d", lambda M, a: M.diag(a), (r(2, 2, 2),),
        "diag(): Supports 1D or 2D tensors. Got 3D"),
    Err("diff-order", lambda M, a: a.diff(n=-1), (r(3),), "order must be non-negative but got -1"),
    Err("meshgrid-2d", lambda M, a: M.meshgrid(a, indexing="ij"), (r(2, 2),),
        "torch.meshgrid: Expected 0D or 1D tensor in the tensor list"),
    Err("meshgrid-indexing", lambda M, a: M.meshgrid(a, indexing="ji"), (r(2),),
        'torch.meshgrid: indexing must be one of "xy" or "ij", but received: ji'),
    Err("tensor_split-0", lambda M, a: a.tensor_split(0), (r(3),),
        "number of sections must be larger than 0, got 0"),
    Err("glu-odd", lambda M, a: _F(M).glu(a), (r(3, 3),),
        "Halving dimension must be even, but dimension 1 is size 3"),
    Err("softshrink-neg", lambda M, a: _F(M).softshrink(a, -1.0), (r(3),),
        "lambda must be in range [0, 3.40282e+38] for input dtype Float, but found -1"),
    Err("celu-0", lambda M, a: _F(M).celu(a, 0.0), (r(3),),
        "ZeroDivisionError: alpha cannot be 0 for CELU"),
    Err("hypot-int", lambda M, a: M.hypot(a, a), (ints(3),), None),
    Err("addcdiv-int", lambda M, a: M.addcdiv(a, a, a), (ints(3),),
        "Integer division with addcdiv is no longer supported"),
    Err("clamp-mixed", lambda M, a: a.clamp(a, 0.5), (r(3),),
        "clamp() received an invalid combination of arguments - got (Tensor, float)"),
    Err("sum_to_size", lambda M, a: a.sum_to_size(3, 2), (r(2, 3),),
        "size {[3, 2]} is not expandable to size {[2, 3]}."),
    Err("instance_norm-1", lambda M, a: _F(M).instance_norm(a), (r(2, 3, 1),),
        "Expected more than 1 spatial element when training, got input size "
        "torch.Size([2, 3, 1])"),
    Err("instance_norm-stats", lambda M, a: _F(M).instance_norm(a, use_input_stats=False),
        (r(2, 3, 4),), "Expected running_mean and running_var to be defined when "
        "use_input_stats is false"),
    Err("adaptive_avg_pool1d-4d", lambda M, a: _F(M).adaptive_avg_pool1d(a, 2),
        (r(2, 3, 4, 5),), "Expected 2 to 3 dimensions, but got 4-dimensional tensor for "
        "argument #1 'self' (while checking arguments for adaptive_avg_pool1d)"),
    Err("soft_margin_loss-target", lambda M, a: _F(M).soft_margin_loss(a, a.requires_grad_()),
        (r(3),), "The function 'soft_margin_loss' is not differentiable with respect to "
        "argument 'target'. This input cannot have requires_grad True."),
    Err("diag_embed-dims", lambda M, a: M.diag_embed(a, 0, 1, 1), (r(2, 3),),
        "diagonal dimensions cannot be identical 1, 1"),
    Err("diag_embed-range", lambda M, a: M.diag_embed(a, 0, 0, 5), (r(2, 3),),
        "Dimension out of range (expected to be in range of [-3, 2], but got 5)"),
    Err("logcumsumexp-int", lambda M, a: a.logcumsumexp(0), (ints(3),),
        "\"logcumsumexp_out_cpu\" not implemented for 'Long'"),
    Err("hardshrink-int", lambda M, a: _F(M).hardshrink(a), (ints(2),),
        "\"hardshrink_cpu\" not implemented for 'Long'"),
    Err("softshrink-int", lambda M, a: _F(M).softshrink(a), (ints(2),),
        "\"softshrink_check\" not implemented for 'Long'"),
    Err("glu-int", lambda M, a: _F(M).glu(a), (ints(2),),
        "\"glu_cpu\" not implemented for 'Long'"),
    Err("hypot-int-text", lambda M, a: M.hypot(a, a), (ints(2),),
        "\"hypot_cpu\" not implemented for 'Long'"),
    Err("selu-int", lambda M, a: _F(M).selu(a), (ints(2),),
        "\"elu_cpu\" not implemented for 'Long'"),
    Err("multi_margin_loss-p", lambda M, a: _F(M).multi_margin_loss(a, M.tensor([0, 1]), p=3),
        (r(2, 3),), "only p == 1 and p == 2 supported"),
    Err("multi_margin_loss-weight", lambda M, a: _F(M).multi_margin_loss(
        a, M.tensor([0, 1]), weight=M.ones(2)), (r(2, 3),),
        "inconsistent weight size, expected 3 but got [2]"),
    Err("dist-int", lambda M, a: M.dist(a, a), (ints(3),),
        "norm(): input dtype should be either floating point or complex. Got Long instead."),
    Err("clamp-none", lambda M, a: a.clamp(), (r(3),),
        "torch.clamp: At least one of 'min' or 'max' must not be None"),
]


@pytest.mark.parametrize("e", ERRS, ids=[e.id for e in ERRS])
def test_errors(M, e: Err):
    theirs, ours = _raised(torch, e), _raised(M, e)
    assert theirs is not None and ours is not None, (theirs, ours)
    if type(theirs).__name__ == "TypeError" or not isinstance(theirs, RuntimeError):
        assert isinstance(ours, type(theirs)), (type(ours), type(theirs))
    else:
        assert isinstance(ours, RuntimeError)
    if e.text is not None:
        assert e.text in str(ours).replace("gradserve", "torch")
        assert e.text in str(theirs)


def test_meshgrid_without_indexing_warns_as_torch():
    a = gs.tensor([1.0, 2.0])
    with pytest.warns(UserWarning, match="required to pass the indexing argument"):
        grids = gs.meshgrid(a, a)
    assert [tuple(g.shape) for g in grids] == [(2, 2), (2, 2)]


def test_layer_reprs_are_torchs():
    for make in (lambda nn: nn.SELU(), lambda nn: nn.SELU(True), lambda nn: nn.CELU(0.5, True),
                 lambda nn: nn.Softsign(), lambda nn: nn.GLU(), lambda nn: nn.Softshrink(),
                 lambda nn: nn.Hardshrink(0.3), lambda nn: nn.Threshold(0.1, 2.0),
                 lambda nn: nn.HingeEmbeddingLoss(), lambda nn: nn.SoftMarginLoss(),
                 lambda nn: nn.MultiMarginLoss(p=2)):
        assert repr(make(gs.nn)) == repr(make(torch.nn))
