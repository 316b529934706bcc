"""The layers and losses of API.md §6 against PyTorch (skipped without torch): the same
weights (torch's, loaded through load_state_dict) and inputs in float64, then outputs,
input gradients and every parameter gradient compared; plus reprs and default shapes."""

from __future__ import annotations

import gradserve.nn as nn
import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI
from gradserve import engine

tnn = torch.nn


def _tensors(out) -> list:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return [] if out is None else [out]


def _inputs(arrays, requires):
    ours, theirs = [], []
    for a, rg in zip(arrays, requires, strict=True):
        a = np.asarray(a)
        floating = a.dtype.kind == "f"
        ours.append(engine.tensor(a, dtype=engine.float64 if floating else None,
                                  requires_grad=rg and floating))
        theirs.append(torch.tensor(a, requires_grad=rg and floating))
    return ours, theirs


def check_parity(ours, theirs, *arrays, requires=None, train=True, rtol=1e-9, atol=1e-11,
                 kwargs=None):
    """Load theirs' weights into ours, run both on `arrays`, compare everything."""
    theirs = theirs.double().train(train)
    ours = ours.to(engine.float64).train(train)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    requires = requires or [True] * len(arrays)
    xs, txs = _inputs(arrays, requires)
    kwargs = kwargs or {}
    out, tout = _tensors(ours(*xs, **kwargs)), _tensors(theirs(*txs, **kwargs))
    assert len(out) == len(tout)
    rng = np.random.default_rng(7)
    loss, tloss = 0, 0
    for o, t in zip(out, tout, strict=True):
        assert tuple(o.shape) == tuple(t.shape)
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
        if t.requires_grad:
            w = rng.standard_normal(tuple(t.shape))
            loss = loss + (o * engine.tensor(w, dtype=engine.float64)).sum()
            tloss = tloss + (t * torch.tensor(w)).sum()
    if isinstance(tloss, int):
        return ours, theirs
    loss.backward()
    tloss.backward()
    for x, tx in zip(xs, txs, strict=True):
        if tx.grad is not None:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        tg = tparams[name].grad
        if tg is None:
            assert p.grad is None, name
        else:
            np.testing.assert_allclose(p.grad.numpy(), tg.numpy(), rtol=rtol, atol=atol,
                                       err_msg=name)
    return ours, theirs


R = np.random.default_rng(0)


def x(*shape):
    return R.standard_normal(shape)


LAYERS = [
    ("conv1d", lambda m: m.Conv1d(3, 4, 3, stride=2, padding=1), [x(2, 3, 9)]),
    ("conv2d-same-dilated", lambda m: m.Conv2d(2, 4, 3, padding="same", dilation=2),
     [x(2, 2, 7, 6)]),
    ("conv2d-groups-nobias", lambda m: m.Conv2d(4, 6, (3, 2), stride=(2, 1), groups=2,
                                                bias=False), [x(2, 4, 7, 5)]),
    ("conv2d-reflect", lambda m: m.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
     [x(1, 2, 5, 5)]),
    ("conv2d-circular-unbatched", lambda m: m.Conv2d(2, 3, 3, padding=2,
                                                     padding_mode="circular"), [x(2, 5, 4)]),
    ("maxpool2d", lambda m: m.MaxPool2d(2), [x(2, 3, 6, 5)]),
    ("maxpool2d-pad-ceil", lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True), [x(1, 2, 7, 6)]),
    ("maxpool1d", lambda m: m.MaxPool1d(3, 2, 1), [x(2, 2, 9)]),
    ("avgpool2d", lambda m: m.AvgPool2d(3, 2, 1, count_include_pad=False), [x(2, 2, 7, 6)]),
    ("avgpool2d-ceil-divisor", lambda m: m.AvgPool2d(2, ceil_mode=True, divisor_override=3),
     [x(1, 2, 5, 5)]),
    ("avgpool1d", lambda m: m.AvgPool1d(3, 2, 1), [x(2, 2, 8)]),
    ("adaptive-2x3", lambda m: m.AdaptiveAvgPool2d((2, 3)), [x(2, 3, 5, 7)]),
    ("adaptive-1", lambda m: m.AdaptiveAvgPool2d(1), [x(2, 3, 5, 7)]),
    ("adaptive-none", lambda m: m.AdaptiveAvgPool2d((None, 2)), [x(1, 2, 3, 5)]),
    ("batchnorm1d-2d-input", lambda m: m.BatchNorm1d(3), [x(5, 3)]),
    ("batchnorm1d-3d-input", lambda m: m.BatchNorm1d(3), [x(4, 3, 6)]),
    ("batchnorm2d", lambda m: m.BatchNorm2d(3), [x(4, 3, 2, 5)]),
    ("batchnorm2d-no-affine", lambda m: m.BatchNorm2d(3, affine=False), [x(4, 3, 2, 2)]),
    ("layernorm", lambda m: m.LayerNorm((3, 4)), [x(2, 3, 4)]),
    ("layernorm-no-bias", lambda m: m.LayerNorm(4, bias=False), [x(3, 4)]),
    ("groupnorm", lambda m: m.GroupNorm(2, 4), [x(3, 4, 5)]),
    ("gelu", lambda m: m.GELU(), [x(3, 4)]),
    ("gelu-tanh", lambda m: m.GELU("tanh"), [x(3, 4)]),
    ("silu", lambda m: m.SiLU(), [x(3, 4)]),
    ("leaky-relu", lambda m: m.LeakyReLU(0.2), [x(3, 4)]),
    ("softmax", lambda m: m.Softmax(dim=1), [x(3, 4)]),
    ("log-softmax", lambda m: m.LogSoftmax(dim=0), [x(3, 4)]),
    ("flatten", lambda m: m.Flatten(), [x(2, 3, 4)]),
    ("identity", lambda m: m.Identity(), [x(2, 3)]),
    ("lstm-2layer-bidirectional", lambda m: m.LSTM(3, 4, num_layers=2, bidirectional=True,
                                                   batch_first=True), [x(2, 5, 3)]),
    ("lstm-unbatched", lambda m: m.LSTM(3, 4), [x(5, 3)]),
    ("gru-2layer", lambda m: m.GRU(3, 4, num_layers=2), [x(5, 2, 3)]),
    ("gru-bidirectional-nobias", lambda m: m.GRU(3, 2, bias=False, bidirectional=True,
                                                 batch_first=True), [x(2, 4, 3)]),
]


@pytest.mark.parametrize("name,make,arrays", LAYERS, ids=[n for n, *_ in LAYERS])
def test_layer_matches_torch(name, make, arrays):
    check_parity(make(nn), make(tnn), *arrays)


def test_embedding_matches_torch_with_padding_idx():
    idx = np.array([[0, 2, 1], [4, 1, 1]])
    ours, _ = check_parity(nn.Embedding(5, 3, padding_idx=1), tnn.Embedding(5, 3, padding_idx=1),
                           idx, requires=[False])
    assert not ours.weight.grad.numpy()[1].any()  # the padding row learns nothing


def test_embedding_max_norm_renormalises_looked_up_rows_like_torch():
    w = R.standard_normal((5, 3)) * 3
    ours = nn.Embedding(5, 3, max_norm=1.0)
    theirs = tnn.Embedding(5, 3, max_norm=1.0).double()
    ours.to(engine.float64).load_state_dict({"weight": w})
    theirs.load_state_dict({"weight": torch.tensor(w)})
    idx = np.array([0, 3, 3])
    out = ours(engine.tensor(idx))
    tout = theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.weight.detach().numpy(), theirs.weight.detach().numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_running_statistics_follow_torch(train):
    ours, theirs = nn.BatchNorm2d(3), tnn.BatchNorm2d(3)
    batches = [x(4, 3, 2, 2) * 2 + 1 for _ in range(3)]
    for b in batches:
        check_parity(ours, theirs, b, train=True)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(),
                                   rtol=1e-12)
    if not train:  # eval mode normalises with the running statistics
        check_parity(ours, theirs, x(2, 3, 2, 2), train=False)


def test_batchnorm_cumulative_average_when_momentum_is_none():
    ours, theirs = nn.BatchNorm1d(2, momentum=None), tnn.BatchNorm1d(2, momentum=None)
    for _ in range(3):
        check_parity(ours, theirs, x(5, 2))
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy())


ATTENTION = [
    ("self-batch-first", lambda m: m.MultiheadAttention(8, 2, batch_first=True),
     lambda a: (a, a, a), {}),
    ("cross-kdim", lambda m: m.MultiheadAttention(8, 2, kdim=6, vdim=4),
     lambda a: (a, x(3, 2, 6), x(3, 2, 4)), {}),
    ("no-bias-per-head-weights", lambda m: m.MultiheadAttention(8, 4, bias=False),
     lambda a: (a, a, a), {"average_attn_weights": False}),
]


@pytest.mark.parametrize("name,make,args,kw", ATTENTION, ids=[n for n, *_ in ATTENTION])
def test_multihead_attention_matches_torch(name, make, args, kw):
    a = x(2, 5, 8) if "batch-first" in name else x(5, 2, 8)
    check_parity(make(nn), make(tnn), *args(a), kwargs=kw)


def test_multihead_attention_masks_match_torch():
    a = x(2, 4, 8)
    causal = np.triu(np.ones((4, 4), dtype=bool), 1)  # True: may not attend
    padding = np.array([[False] * 4, [False, False, True, True]])
    for mask_kw in ({"attn_mask": causal}, {"key_padding_mask": padding},
                    {"attn_mask": np.where(causal, -1e9, 0.0)}):
        ours, theirs = nn.MultiheadAttention(8, 2, batch_first=True), \
            tnn.MultiheadAttention(8, 2, batch_first=True)
        kw = {k: engine.tensor(v) for k, v in mask_kw.items()}
        tkw = {k: torch.tensor(v) for k, v in mask_kw.items()}
        theirs.double()
        ours.to(engine.float64).load_state_dict(
            {k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        if "attn_mask" in kw and kw["attn_mask"].dtype.is_floating_point:
            kw["attn_mask"], tkw["attn_mask"] = kw["attn_mask"].double(), tkw["attn_mask"]
        t = engine.tensor(a, dtype=engine.float64)
        out, w = ours(t, t, t, **kw)
        tt = torch.tensor(a)
        tout, tw = theirs(tt, tt, tt, **tkw)
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-9)
        np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-9,
                                   atol=1e-12)


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_layer_matches_torch(norm_first, activation):
    make = lambda m: m.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,  # noqa: E731
                                               activation=activation, batch_first=True,
                                               norm_first=norm_first)
    mask = np.triu(np.full((5, 5), -np.inf), 1)
    ours, theirs = make(nn), make(tnn)
    check_parity(ours, theirs, x(2, 5, 8), mask, requires=[True, False],
                 kwargs={"is_causal": True})


LOSSES = [
    ("l1", lambda m: m.L1Loss(), [x(3, 4), x(3, 4)]),
    ("l1-sum", lambda m: m.L1Loss(reduction="sum"), [x(3, 4), x(3, 4)]),
    ("mse-none", lambda m: m.MSELoss(reduction="none"), [x(3, 4), x(3, 4)]),
    ("smooth-l1", lambda m: m.SmoothL1Loss(beta=0.5), [x(3, 4) * 2, x(3, 4)]),
    ("smooth-l1-beta0", lambda m: m.SmoothL1Loss(beta=0.0), [x(3, 4), x(3, 4)]),
    ("huber", lambda m: m.HuberLoss(delta=0.7, reduction="sum"), [x(3, 4) * 2, x(3, 4)]),
    ("bce", lambda m: m.BCELoss(), [R.uniform(0.05, 0.95, (3, 4)), R.uniform(0, 1, (3, 4))]),
    ("bce-logits", lambda m: m.BCEWithLogitsLoss(), [x(3, 4), R.uniform(0, 1, (3, 4))]),
    ("kl-batchmean", lambda m: m.KLDivLoss(reduction="batchmean"),
     [np.log(R.dirichlet(np.ones(4), 3)), R.dirichlet(np.ones(4), 3)]),
    ("kl-log-target", lambda m: m.KLDivLoss(reduction="sum", log_target=True),
     [np.log(R.dirichlet(np.ones(4), 3)), np.log(R.dirichlet(np.ones(4), 3))]),
    ("ce-prob-target", lambda m: m.CrossEntropyLoss(label_smoothing=0.1),
     [x(3, 4), R.dirichlet(np.ones(4), 3)]),
]


@pytest.mark.parametrize("name,make,arrays", LOSSES, ids=[n for n, *_ in LOSSES])
def test_loss_matches_torch(name, make, arrays):
    check_parity(make(nn), make(tnn), *arrays)


def test_kl_div_zero_targets_give_zero_terms():
    inp, target = np.log(np.full((2, 3), 1 / 3)), np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    check_parity(nn.KLDivLoss(reduction="sum"), tnn.KLDivLoss(reduction="sum"), inp, target,
                 requires=[True, False])


WEIGHT = np.array([0.2, 1.0, 2.0, 0.5])
CLASS_LOSSES = [
    ("ce-weight", dict(weight=WEIGHT), (5, 4), [0, 3, 2, 1, 3]),
    ("ce-weight-ignore", dict(weight=WEIGHT, ignore_index=2), (5, 4), [0, 3, 2, 1, 2]),
    ("ce-smoothing", dict(label_smoothing=0.2), (5, 4), [0, 3, 2, 1, 3]),
    ("ce-smoothing-weight-ignore-sum", dict(label_smoothing=0.1, weight=WEIGHT,
                                            ignore_index=1, reduction="sum"),
     (5, 4), [0, 1, 2, 1, 3]),
    ("ce-kdim", dict(), (2, 4, 3, 2), [[[0, 1], [3, 2], [1, 1]], [[2, 2], [0, 3], [1, 0]]]),
    ("ce-kdim-weight-none", dict(weight=WEIGHT, reduction="none"), (2, 4, 3),
     [[0, 1, 3], [2, 2, 0]]),
]


@pytest.mark.parametrize("loss", ["ce", "nll"])
@pytest.mark.parametrize("name,kw,shape,target", CLASS_LOSSES, ids=[c[0] for c in CLASS_LOSSES])
def test_class_losses_match_torch(loss, name, kw, shape, target):
    if loss == "nll" and "label_smoothing" in kw:
        pytest.skip("nll_loss has no label smoothing")
    kw = dict(kw)
    tkw = dict(kw)
    if "weight" in kw:
        kw["weight"] = engine.tensor(kw["weight"], dtype=engine.float64)
        tkw["weight"] = torch.tensor(tkw["weight"])
    scores = x(*shape)
    if loss == "nll":
        scores = torch.log_softmax(torch.tensor(scores), 1).numpy()
        ours, theirs = nn.NLLLoss(**kw), tnn.NLLLoss(**tkw)
    else:
        ours, theirs = nn.CrossEntropyLoss(**kw), tnn.CrossEntropyLoss(**tkw)
    check_parity(ours, theirs, scores, np.array(target), requires=[True, False])


REPRS = [
    (lambda m: m.Conv2d(1, 8, 3, padding=1), None),
    (lambda m: m.Conv2d(4, 8, (3, 5), stride=2, dilation=2, groups=2, bias=False,
                        padding_mode="reflect", padding="valid"), None),
    (lambda m: m.Conv1d(2, 3, 5, padding="same"), None),
    (lambda m: m.MaxPool2d(2), None),
    (lambda m: m.AvgPool2d(3, 1), None),
    (lambda m: m.AdaptiveAvgPool2d((1, 1)), None),
    (lambda m: m.BatchNorm2d(8, momentum=None), None),
    (lambda m: m.LayerNorm([4, 5], elementwise_affine=False), None),
    (lambda m: m.GroupNorm(2, 8), None),
    (lambda m: m.Embedding(10, 3, padding_idx=0), None),
    (lambda m: m.GELU(approximate="tanh"), None),
    (lambda m: m.LeakyReLU(0.2), None),
    (lambda m: m.Softmax(dim=-1), None),
    (lambda m: m.Flatten(0, 2), None),
    (lambda m: m.MultiheadAttention(8, 2, batch_first=True), None),
    (lambda m: m.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True), None),
    (lambda m: m.GRU(3, 4, bias=False), None),
    (lambda m: m.ModuleList([m.Linear(2, 2), m.ReLU()]), None),
    (lambda m: m.ModuleDict({"a": m.Identity()}), None),
    (lambda m: m.TransformerEncoderLayer(8, 2, 16), "partial"),
]


@pytest.mark.parametrize("make,how", REPRS, ids=range(len(REPRS)))
def test_repr_matches_torch(make, how):
    ours, theirs = repr(make(nn)), repr(make(tnn))
    if how == "partial":  # torch names its activation's function object; compare the rest
        ours, theirs = ours.split("(activation")[0], theirs.split("(activation")[0]
    assert ours == theirs


@pytest.mark.parametrize("make", [
    lambda m: m.Conv2d(3, 4, 3), lambda m: m.BatchNorm1d(3), lambda m: m.LSTM(2, 3, 2),
    lambda m: m.MultiheadAttention(4, 2), lambda m: m.TransformerEncoderLayer(4, 2, 8),
    lambda m: m.Embedding(4, 2), lambda m: m.GroupNorm(1, 2),
])
def test_parameter_and_buffer_names_and_shapes_match_torch(make):
    ours, theirs = make(nn), make(tnn)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    tshapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert shapes == tshapes
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
