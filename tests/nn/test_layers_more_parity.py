"""The layers and losses of API.md §7 against torch, in-process and on a real session:
torch's weights loaded through load_state_dict (so the parameter names are torch's), the
same float64 inputs, then outputs, input gradients and every parameter gradient compared.
Plus default initialisation ranges, reprs and the containers of bare parameters."""

from __future__ import annotations

import gradserve.nn as nn
import numpy as np
import pytest
import torch
from gradserve import engine

tnn = torch.nn
R = np.random.default_rng(0)


def x(*shape):
    return R.standard_normal(shape)


def pos(*shape):
    return R.uniform(0.2, 2.0, shape)


def signs(*shape):
    return np.where(R.standard_normal(shape) > 0, 1.0, -1.0)


def _tensors(out) -> list:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return [] if out is None else [out]


@pytest.fixture(params=["engine", "remote"])
def home(request):
    return engine if request.param == "engine" else request.getfixturevalue("session")


def check_parity(home, make, arrays, requires=None, kwargs=None, rtol=1e-9, atol=1e-11):
    """Build ours on `home` and torch's, load torch's weights into ours, run both, compare
    outputs and (through a fixed random weighting) all gradients."""
    torch.manual_seed(0)
    theirs = make(tnn).double()
    ours = make(nn) if home is engine else _on(home, make)
    ours = ours.to(engine.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    requires = requires or [True] * len(arrays)
    xs = [home.tensor(np.asarray(a), dtype=engine.float64, requires_grad=rg)
          if np.asarray(a).dtype.kind == "f" else home.tensor(np.asarray(a))
          for a, rg in zip(arrays, requires, strict=True)]
    txs = [torch.tensor(np.asarray(a), requires_grad=rg and np.asarray(a).dtype.kind == "f")
           for a, rg in zip(arrays, requires, strict=True)]
    kwargs = kwargs or {}
    out, tout = _tensors(ours(*xs, **kwargs)), _tensors(theirs(*txs, **kwargs))
    assert len(out) == len(tout)
    rng = np.random.default_rng(7)
    loss, tloss = 0, 0
    for o, t in zip(out, tout, strict=True):
        assert tuple(o.shape) == tuple(t.shape)
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
        w = rng.standard_normal(tuple(t.shape))
        loss = loss + (o * home.tensor(w, dtype=engine.float64)).sum()
        tloss = tloss + (t * torch.tensor(w)).sum()
    loss.backward()
    tloss.backward()
    for i, (a, ta) in enumerate(zip(xs, txs, strict=True)):
        if ta.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"input {i}")
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        tg = tparams[name].grad
        if tg is None:
            assert p.grad is None, name
        else:
            np.testing.assert_allclose(p.grad.numpy(), tg.numpy(), rtol=rtol, atol=atol,
                                       err_msg=name)


def _on(session, make):
    import gradserve as gs

    with gs.use(session):
        return make(nn)


class _Mask:
    """Transformer keyword masks, made by each library."""

    def __init__(self, **kw):
        self.kw = kw


LAYERS = [
    ("rnn-tanh", lambda m: m.RNN(3, 5), [x(4, 2, 3)], None),
    ("rnn-relu-2-bidir-batch-first", lambda m: m.RNN(3, 4, num_layers=2, nonlinearity="relu",
                                                     bidirectional=True, batch_first=True),
     [x(2, 4, 3)], None),
    ("rnn-hx-unbatched", lambda m: m.RNN(3, 4, bias=False), [x(5, 3), x(1, 4)], None),
    ("rnncell", lambda m: m.RNNCell(3, 5), [x(2, 3), x(2, 5)], None),
    ("rnncell-relu-unbatched", lambda m: m.RNNCell(3, 5, nonlinearity="relu"), [x(3)], None),
    ("lstmcell", lambda m: m.LSTMCell(3, 4), [x(2, 3)], None),
    ("grucell", lambda m: m.GRUCell(3, 4), [x(2, 3), x(2, 4)], None),
    ("grucell-no-bias-unbatched", lambda m: m.GRUCell(3, 4, bias=False), [x(3)], None),
    ("elu", lambda m: m.ELU(alpha=0.7), [x(3, 4)], None),
    ("softplus", lambda m: m.Softplus(beta=2.0, threshold=1.0), [x(3, 4)], None),
    ("prelu-channels", lambda m: m.PReLU(3, init=0.1), [x(2, 3, 4)], None),
    ("prelu-shared", lambda m: m.PReLU(), [x(5)], None),
    ("mish", lambda m: m.Mish(), [x(3, 4)], None),
    ("hardtanh", lambda m: m.Hardtanh(-0.5, 0.7), [x(3, 4)], None),
    ("relu6", lambda m: m.ReLU6(), [x(3, 4) * 5], None),
    ("hardsigmoid", lambda m: m.Hardsigmoid(), [x(3, 4) * 4], None),
    ("hardswish", lambda m: m.Hardswish(), [x(3, 4) * 4], None),
    ("logsigmoid", lambda m: m.LogSigmoid(), [x(3, 4) * 10], None),
    ("softmin", lambda m: m.Softmin(dim=1), [x(3, 4)], None),
    ("bilinear", lambda m: m.Bilinear(3, 2, 4), [x(5, 3), x(5, 2)], None),
    ("bilinear-no-bias", lambda m: m.Bilinear(3, 2, 4, bias=False), [x(3), x(2)], None),
    ("encoder", lambda m: m.TransformerEncoder(
        m.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2, norm=m.LayerNorm(8)),
     [x(5, 3, 8)], None),
    ("decoder-layer", lambda m: m.TransformerDecoderLayer(8, 2, 16, dropout=0.0),
     [x(4, 3, 8), x(5, 3, 8)], None),
    ("decoder-layer-norm-first-gelu", lambda m: m.TransformerDecoderLayer(
        8, 2, 16, dropout=0.0, norm_first=True, activation="gelu", batch_first=True),
     [x(3, 4, 8), x(3, 5, 8)], None),
    ("decoder", lambda m: m.TransformerDecoder(
        m.TransformerDecoderLayer(8, 2, 16, dropout=0.0), 2, norm=m.LayerNorm(8)),
     [x(4, 3, 8), x(5, 3, 8)], None),
    ("transformer", lambda m: m.Transformer(8, 2, 2, 1, 16, dropout=0.0),
     [x(5, 3, 8), x(4, 3, 8)], None),
    ("transformer-masked", lambda m: m.Transformer(8, 2, 1, 2, 16, dropout=0.0,
                                                   batch_first=True),
     [x(3, 5, 8), x(3, 4, 8)], "causal"),
]


@pytest.mark.parametrize("name,make,arrays,extra", LAYERS, ids=[t[0] for t in LAYERS])
def test_layer_matches_torch(home, name, make, arrays, extra):
    kwargs = None
    if extra == "causal":
        mask = np.triu(np.full((4, 4), -np.inf), 1)
        pad = np.zeros((3, 5), dtype=bool)
        pad[0, -1] = True
        kwargs = {"tgt_mask": mask, "src_key_padding_mask": pad}
        ours_kw = {k: home.tensor(v, dtype=engine.float64 if v.dtype.kind == "f" else None)
                   for k, v in kwargs.items()}
        theirs_kw = {k: torch.tensor(v) for k, v in kwargs.items()}
        _check_with_kwargs(home, make, arrays, ours_kw, theirs_kw)
        return
    # torch's hardsigmoid/hardswish backward kernels scale by the float32 constant 1.0f/6.0f
    rtol = 1e-7 if name in ("hardsigmoid", "hardswish") else 1e-9
    check_parity(home, make, arrays, rtol=rtol)


def _check_with_kwargs(home, make, arrays, ours_kw, theirs_kw):
    torch.manual_seed(0)
    theirs = make(tnn).double()
    ours = (make(nn) if home is engine else _on(home, make)).to(engine.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    xs = [home.tensor(a, dtype=engine.float64) for a in arrays]
    out = ours(*xs, **ours_kw)
    tout = theirs(*[torch.tensor(a) for a in arrays], **theirs_kw)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-9,
                               atol=1e-11)


def test_the_transformer_mask_helper_is_torch_s():
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(4).numpy(),
                                  tnn.Transformer.generate_square_subsequent_mask(4).numpy())


def test_stacks_start_from_copies_of_the_layer(home):
    layer = _on(home, lambda m: m.TransformerEncoderLayer(8, 2, 16)) if home is not engine \
        else nn.TransformerEncoderLayer(8, 2, 16)
    enc = nn.TransformerEncoder(layer, 3)
    w = [lay.linear1.weight for lay in enc.layers]
    assert len({id(t) for t in w}) == 3 and all(isinstance(t, nn.Parameter) for t in w)
    np.testing.assert_array_equal(w[0].detach().numpy(), w[2].detach().numpy())
    np.testing.assert_array_equal(w[0].detach().numpy(), layer.linear1.weight.detach().numpy())
    if home is not engine:
        assert all(t.session is home for t in w)


@pytest.mark.parametrize("make,bound", [
    (lambda m: m.RNNCell(6, 16), 1 / 4), (lambda m: m.LSTMCell(6, 16), 1 / 4),
    (lambda m: m.GRUCell(6, 16), 1 / 4), (lambda m: m.RNN(6, 16, num_layers=2), 1 / 4),
    (lambda m: m.Bilinear(9, 4, 5), 1 / 3),
])
def test_default_initialisation_is_torch_s(make, bound):
    """U(-bound, bound) with torch's bound (1/sqrt(hidden), 1/sqrt(in1)), torch's names."""
    engine.manual_seed(0)
    ours, theirs = make(nn), make(tnn)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    for p in ours.parameters():
        a = p.detach().numpy()
        assert np.abs(a).max() <= bound
        if a.size >= 50:  # uniform: std = bound / sqrt(3)
            assert a.std() > bound / 3
    prelu = nn.PReLU(4, 0.3).weight.detach().numpy()
    np.testing.assert_array_equal(prelu, tnn.PReLU(4, 0.3).weight.detach().numpy())


def test_transformer_parameters_are_xavier_initialised():
    model = nn.Transformer(16, 2, 1, 1, 32)
    w = model.encoder.layers[0].linear1.weight.detach().numpy()
    assert np.abs(w).max() <= np.sqrt(6 / (16 + 32)) and w.std() > 0.1


@pytest.mark.parametrize("make", [
    lambda m: m.RNN(3, 4, num_layers=2, nonlinearity="relu"), lambda m: m.RNNCell(3, 4),
    lambda m: m.LSTMCell(3, 4, bias=False), lambda m: m.ELU(0.5), lambda m: m.Softplus(2.0),
    lambda m: m.PReLU(3), lambda m: m.Hardtanh(-2.0, 2.0), lambda m: m.ReLU6(),
    lambda m: m.Softmin(1), lambda m: m.Bilinear(2, 3, 4), lambda m: m.Mish(),
    lambda m: m.LogSigmoid(), lambda m: m.Hardswish(), lambda m: m.Hardsigmoid(),
])
def test_reprs_are_torch_s(make):
    assert repr(make(nn)) == repr(make(tnn))


def test_parameter_containers_as_torch_s():
    class Net:
        def __init__(self, m):
            self.m = m

        def build(self):
            m = self.m

            class Model(m.Module):
                def __init__(self):
                    super().__init__()
                    self.scales = m.ParameterList([m.Parameter(ones(2)), ones(3)])
                    self.named = m.ParameterDict({"a": ones(1), "b": m.Parameter(ones(2))})

            ones = engine.ones if self.m is nn else torch.ones
            return Model()

    ours, theirs = Net(nn).build(), Net(tnn).build()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert all(isinstance(p, nn.Parameter) for p in ours.parameters())
    assert repr(ours).replace("gradserve", "torch") == repr(theirs)
    pl = ours.scales
    pl.append(engine.zeros(4))
    assert len(pl) == 3 and pl[-1].shape == (4,) and [p.shape[0] for p in pl] == [2, 3, 4]
    pd = ours.named
    assert list(pd.keys()) == ["a", "b"] and "a" in pd and pd.get("z") is None
    pd["c"] = engine.ones(5)
    assert [n for n, _ in pd.named_parameters()] == ["a", "b", "c"]
    assert pd.pop("a").shape == (1,) and list(pd) == ["b", "c"]


LOSSES = [
    ("margin-ranking", lambda m: m.MarginRankingLoss(margin=0.3), [x(6), x(6), signs(6)]),
    ("margin-ranking-sum", lambda m: m.MarginRankingLoss(reduction="sum"),
     [x(6), x(6), signs(6)]),
    ("cosine-embedding", lambda m: m.CosineEmbeddingLoss(margin=0.2), [x(5, 4), x(5, 4),
                                                                      signs(5)]),
    ("cosine-embedding-none-1d", lambda m: m.CosineEmbeddingLoss(reduction="none"),
     [x(4), x(4), signs(1)[0]]),
    ("triplet", lambda m: m.TripletMarginLoss(margin=0.5), [x(5, 4), x(5, 4), x(5, 4)]),
    ("triplet-p1-swap", lambda m: m.TripletMarginLoss(p=1, swap=True, reduction="none"),
     [x(5, 4), x(5, 4), x(5, 4)]),
    ("poisson-log", lambda m: m.PoissonNLLLoss(), [x(3, 4), pos(3, 4) * 3]),
    ("poisson-full", lambda m: m.PoissonNLLLoss(log_input=False, full=True),
     [pos(3, 4), pos(3, 4) * 3]),
    ("gaussian", lambda m: m.GaussianNLLLoss(), [x(4, 3), x(4, 3), pos(4, 3)]),
    ("gaussian-homoscedastic-full", lambda m: m.GaussianNLLLoss(full=True, reduction="sum"),
     [x(4, 3), x(4, 3), pos(4)]),
    ("multilabel-soft-margin", lambda m: m.MultiLabelSoftMarginLoss(),
     [x(4, 5), (R.uniform(size=(4, 5)) > 0.5).astype(float)]),
]


@pytest.mark.parametrize("name,make,arrays", LOSSES, ids=[t[0] for t in LOSSES])
def test_loss_matches_torch(home, name, make, arrays):
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    requires = [True] * len(arrays)
    if name.startswith(("margin", "cosine", "multilabel", "poisson")):
        requires[-1] = False  # targets
    if name.startswith("gaussian"):
        requires[1] = False
    check_parity(home, make, arrays, requires=requires)


def test_multilabel_soft_margin_weight_and_functional_forms():
    w = x(5)
    inp, tgt = x(4, 5), (R.uniform(size=(4, 5)) > 0.5).astype(float)
    ours = nn.functional.multilabel_soft_margin_loss(
        engine.tensor(inp, dtype=engine.float64), engine.tensor(tgt, dtype=engine.float64),
        weight=engine.tensor(w, dtype=engine.float64))
    theirs = tnn.functional.multilabel_soft_margin_loss(torch.tensor(inp), torch.tensor(tgt),
                                                        weight=torch.tensor(w))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    for fn, args in [("hardtanh", (x(5),)), ("relu6", (x(5) * 5,)), ("mish", (x(5),)),
                     ("logsigmoid", (x(5),)), ("hardswish", (x(5) * 4,)),
                     ("hardsigmoid", (x(5) * 4,))]:
        ours = getattr(nn.functional, fn)(*[engine.tensor(a, dtype=engine.float64)
                                            for a in args])
        theirs = getattr(tnn.functional, fn)(*[torch.tensor(a) for a in args])
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, err_msg=fn)
    a = x(3, 4)
    np.testing.assert_allclose(nn.functional.softmin(engine.tensor(a), dim=0).numpy(),
                               tnn.functional.softmin(torch.tensor(a), dim=0).numpy(), rtol=1e-6)


def test_loss_errors_are_torch_s():
    with pytest.raises(ValueError) as theirs:
        tnn.functional.gaussian_nll_loss(torch.zeros(2), torch.zeros(2), -torch.ones(2))
    with pytest.raises(ValueError) as ours:
        nn.functional.gaussian_nll_loss(engine.zeros(2), engine.zeros(2), -engine.ones(2))
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as theirs:
        tnn.functional.gaussian_nll_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3))
    with pytest.raises(ValueError) as ours:
        nn.functional.gaussian_nll_loss(engine.zeros(2, 3), engine.zeros(2, 3), engine.ones(3))
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as theirs:
        tnn.TripletMarginLoss(margin=0)
    with pytest.raises(ValueError) as ours:
        nn.TripletMarginLoss(margin=0)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as theirs:
        tnn.RNN(2, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError) as ours:
        nn.RNN(2, 2, nonlinearity="sigmoid")
    assert str(ours.value) == str(theirs.value)


def _away_from_kinks(a, kinks=(-3.0, 0.0, 3.0, -0.5, 0.7, 6.0)):
    """Values at least 0.05 from the points where a piecewise function has no derivative."""
    a = np.array(a, dtype=np.float64)
    for k in kinks:
        near = np.abs(a - k) < 0.05
        a[near] = k + 0.1
    return a


GRADCHECKED = [
    ("hardtanh", lambda a: nn.functional.hardtanh(a, -0.5, 0.7), [x(6)]),
    ("hardswish", nn.functional.hardswish, [x(6) * 4]),
    ("hardsigmoid", nn.functional.hardsigmoid, [x(6) * 4]),
    ("mish", nn.functional.mish, [x(6)]),
    ("logsigmoid", nn.functional.logsigmoid, [x(6) * 3]),
    ("softmin", lambda a: nn.functional.softmin(a, dim=1), [x(2, 3)]),
    ("prelu", nn.functional.prelu, [x(2, 3, 2), x(3)]),
    ("bilinear", nn.functional.bilinear, [x(2, 3), x(2, 2), x(4, 3, 2), x(4)]),
    ("margin-ranking", lambda a, b: nn.functional.margin_ranking_loss(
        a, b, engine.tensor([1.0, -1.0, 1.0], dtype=engine.float64), margin=0.1),
     [x(3), x(3)]),
    ("cosine-embedding", lambda a, b: nn.functional.cosine_embedding_loss(
        a, b, engine.tensor([1.0, -1.0], dtype=engine.float64)), [x(2, 3), x(2, 3)]),
    ("triplet", lambda a, p, n: nn.functional.triplet_margin_loss(a, p, n, margin=3.0),
     [x(2, 3), x(2, 3), x(2, 3)]),
    ("poisson", lambda a: nn.functional.poisson_nll_loss(
        a, engine.tensor([1.0, 3.0, 0.0], dtype=engine.float64)), [x(3)]),
    ("gaussian", lambda a, v: nn.functional.gaussian_nll_loss(
        a, engine.zeros(3, dtype=engine.float64), v), [x(3), pos(3)]),
    ("multilabel", lambda a: nn.functional.multilabel_soft_margin_loss(
        a, engine.tensor([[1.0, 0.0, 1.0]], dtype=engine.float64)), [x(1, 3)]),
]


@pytest.mark.parametrize("name,fn,arrays", GRADCHECKED, ids=[g[0] for g in GRADCHECKED])
@pytest.mark.parametrize("order", [1, 2])
def test_first_and_second_order_gradients(name, fn, arrays, order):
    from gradserve.engine.gradcheck import check_grads

    inputs = [engine.tensor(_away_from_kinks(a), dtype=engine.float64, requires_grad=True)
              for a in arrays]
    check_grads(fn, inputs, order=order)
