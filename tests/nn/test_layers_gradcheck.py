"""Numerical gradient checks (float64 central differences, engine.gradcheck.check_grads) of
every layer and loss of API.md §6, with respect to the input and every parameter."""

from __future__ import annotations

import gradserve.nn as nn
import numpy as np
import pytest
from gradserve import engine
from gradserve.engine.gradcheck import check_grads

R = np.random.default_rng(3)


def _leaf(a):
    return engine.tensor(np.asarray(a, dtype=np.float64), dtype=engine.float64,
                         requires_grad=True)


def check_module(module, *arrays, grad_inputs=None, train=True, order=1):
    """check_grads of sum(w * module(*inputs)) w.r.t. the float inputs and all parameters."""
    module = module.to(engine.float64).train(train)
    slots = [(m, name) for _, m in module.named_modules() for name, p in m._parameters.items()
             if p is not None]
    grad_inputs = grad_inputs or [True] * len(arrays)
    inputs = [_leaf(a) if g else engine.tensor(a) for a, g in zip(arrays, grad_inputs,
                                                                    strict=True)]
    params = [_leaf(m._parameters[name].detach().numpy()) for m, name in slots]
    weights = {}

    def fn(*args):
        xs, ps = args[:len(inputs)], args[len(inputs):]
        for (m, name), p in zip(slots, ps, strict=True):
            m._parameters[name] = p
        outs = module(*xs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        flat = [o for out in outs for o in (out if isinstance(out, tuple) else (out,))
                if o is not None]
        total = 0
        for i, o in enumerate(flat):
            if i not in weights:
                weights[i] = engine.tensor(R.standard_normal(o.shape), dtype=engine.float64)
            total = total + (o * weights[i]).sum()
        return total

    check_grads(fn, inputs + params, order=order)


def x(*shape):
    return R.standard_normal(shape)


LAYERS = [
    ("conv1d", lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), [x(1, 2, 6)]),
    ("conv2d", lambda: nn.Conv2d(2, 2, 2, padding="same", dilation=1), [x(1, 2, 3, 3)]),
    ("conv2d-groups", lambda: nn.Conv2d(2, 2, (2, 1), stride=(2, 1), groups=2),
     [x(1, 2, 4, 3)]),
    ("maxpool2d", lambda: nn.MaxPool2d(2), [R.permutation(32).reshape(1, 2, 4, 4) * 0.3]),
    ("avgpool2d", lambda: nn.AvgPool2d(2, 1, 1, count_include_pad=False), [x(1, 1, 3, 3)]),
    ("adaptive", lambda: nn.AdaptiveAvgPool2d((2, 2)), [x(1, 2, 3, 3)]),
    ("batchnorm1d", lambda: nn.BatchNorm1d(2), [x(4, 2)]),
    ("batchnorm2d", lambda: nn.BatchNorm2d(2), [x(2, 2, 2, 2)]),
    ("layernorm", lambda: nn.LayerNorm(3), [x(2, 3)]),
    ("groupnorm", lambda: nn.GroupNorm(2, 4), [x(2, 4, 2)]),
    ("gelu", lambda: nn.GELU(), [x(2, 3)]),
    ("silu", lambda: nn.SiLU(), [x(2, 3)]),
    ("leaky", lambda: nn.LeakyReLU(0.3), [x(2, 3) + 0.05]),
    ("softmax", lambda: nn.Softmax(1), [x(2, 3)]),
    ("log-softmax", lambda: nn.LogSoftmax(1), [x(2, 3)]),
    ("flatten", lambda: nn.Flatten(), [x(2, 2, 2)]),
    ("mha", lambda: nn.MultiheadAttention(4, 2, batch_first=True), [x(1, 3, 4)] * 3),
    ("encoder-layer", lambda: nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0,
                                                         batch_first=True), [x(1, 3, 4)]),
    ("lstm", lambda: nn.LSTM(2, 2, bidirectional=True), [x(3, 1, 2)]),
    ("gru", lambda: nn.GRU(2, 2, num_layers=2), [x(3, 1, 2)]),
]


@pytest.mark.parametrize("name,make,arrays", LAYERS, ids=[n for n, *_ in LAYERS])
def test_layer_gradients_match_finite_differences(name, make, arrays):
    check_module(make(), *arrays)


def test_batchnorm_eval_mode_gradients():
    bn = nn.BatchNorm1d(2)
    bn(engine.randn(5, 2))  # some running statistics
    check_module(bn, x(3, 2), train=False)


def test_embedding_gradients():
    check_module(nn.Embedding(4, 2), np.array([[0, 3], [3, 1]]), grad_inputs=[False])


def test_conv_and_norm_second_derivatives():
    check_module(nn.Conv2d(1, 1, 2), x(1, 1, 3, 3), order=2)
    check_module(nn.LayerNorm(3), x(2, 3), order=2)


def U(*shape):
    return R.uniform(0.1, 0.9, shape)


LOSSES = [
    ("l1", nn.L1Loss(), [x(2, 3), x(2, 3)]),
    ("mse", nn.MSELoss(reduction="sum"), [x(2, 3), x(2, 3)]),
    ("smooth-l1", nn.SmoothL1Loss(beta=0.5), [x(2, 3), x(2, 3)]),
    ("huber", nn.HuberLoss(delta=0.5, reduction="none"), [x(2, 3), x(2, 3)]),
    ("bce", nn.BCELoss(), [U(2, 3), U(2, 3)]),
    ("bce-logits-pos-weight", nn.BCEWithLogitsLoss(pos_weight=engine.tensor(
        [1.0, 2.0, 0.5], dtype=engine.float64)), [x(2, 3), U(2, 3)]),
    ("kl", nn.KLDivLoss(reduction="batchmean"), [np.log(U(2, 3)), U(2, 3)]),
    ("kl-log-target", nn.KLDivLoss(reduction="sum", log_target=True),
     [np.log(U(2, 3)), np.log(U(2, 3))]),
    ("ce-prob", nn.CrossEntropyLoss(label_smoothing=0.1), [x(2, 3), U(2, 3)]),
]


@pytest.mark.parametrize("name,loss,arrays", LOSSES, ids=[n for n, *_ in LOSSES])
def test_loss_gradients_match_finite_differences(name, loss, arrays):
    check_module(loss, *arrays)


W = engine.tensor([0.5, 2.0, 1.0], dtype=engine.float64)
CLASS = [
    ("ce-weight-ignore", nn.CrossEntropyLoss(weight=W, ignore_index=1), (4, 3), [0, 1, 2, 2]),
    ("ce-smoothing", nn.CrossEntropyLoss(label_smoothing=0.2, weight=W), (4, 3), [0, 1, 2, 2]),
    ("ce-kdim", nn.CrossEntropyLoss(), (2, 3, 2), [[0, 2], [1, 1]]),
    ("nll-weight", nn.NLLLoss(weight=W, reduction="sum"), (4, 3), [0, 1, 2, 2]),
]


@pytest.mark.parametrize("name,loss,shape,target", CLASS, ids=[c[0] for c in CLASS])
def test_class_loss_gradients_match_finite_differences(name, loss, shape, target):
    check_module(loss, x(*shape), np.array(target), grad_inputs=[True, False])
