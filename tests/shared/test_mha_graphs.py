"""MultiheadAttention records the nodes of torch's multi_head_attention_forward (the packed
in-projection through linear/addmm, unflatten, transpose, contiguous and select, the heads as
views and transposes, bmm or baddbmm, softmax, dropout, bmm, or the CPU flash kernel without
weights, then out_proj), node for node, with torch's values and gradients: need_weights or
not, batch_first, masks, cross-attention, separate projection weights, unbatched inputs; on
engine tensors and in a live session."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle

from .test_grad_fn_types import _graph

X = np.random.default_rng(0).standard_normal((3, 2, 4))
CASES = {
    "weights": ({}, {}),
    "no_weights": ({}, {"need_weights": False}),
    "batch_first": ({"batch_first": True}, {}),
    "batch_first_no_weights": ({"batch_first": True}, {"need_weights": False}),
    "bool_mask": ({}, {"attn_mask": "causal"}),
    "float_mask": ({}, {"attn_mask": "float"}),
    "padding": ({}, {"key_padding_mask": "padding"}),
    "mask_and_padding": ({}, {"attn_mask": "causal", "key_padding_mask": "padding"}),
    "causal_no_weights": ({}, {"need_weights": False, "attn_mask": "causal", "is_causal": True}),
    "padding_no_weights": ({}, {"need_weights": False, "key_padding_mask": "padding"}),
    "mask_no_weights": ({}, {"need_weights": False, "attn_mask": "causal"}),
    "no_bias": ({"bias": False}, {}),
    "kdim_vdim": ({"kdim": 3, "vdim": 5}, {"inputs": "kv"}),
    "dropout": ({"dropout": 0.3}, {}),
    "dropout_no_weights": ({"dropout": 0.3}, {"need_weights": False}),
    "per_head_weights": ({}, {"average_attn_weights": False}),
    "unbatched": ({}, {"inputs": "unbatched"}),
    "unbatched_no_weights": ({}, {"inputs": "unbatched", "need_weights": False}),
    "cross": ({}, {"inputs": "cross"}),
    "cross_no_weights": ({}, {"inputs": "cross", "need_weights": False}),
}


def _run(M, case):
    module_kw, call_kw = CASES[case]
    call_kw = dict(call_kw)
    M.manual_seed(0)
    m = M.nn.MultiheadAttention(4, 2, dtype=M.float64, **module_kw)
    x = M.tensor(X, requires_grad=True)
    inputs = call_kw.pop("inputs", None)
    if inputs == "kv":
        args = (x, M.tensor(np.ones((3, 2, 3)), requires_grad=True), M.tensor(np.ones((3, 2, 5))))
    elif inputs == "unbatched":
        args = (x[:, 0],) * 3
    elif inputs == "cross":
        memory = M.tensor(X[:2] * 2, requires_grad=True)
        args = (x, memory, memory)
    else:
        args = (x, x, x)
    if call_kw.get("attn_mask") == "causal":
        call_kw["attn_mask"] = M.tensor(np.triu(np.ones((3, 3), bool), 1))
    elif call_kw.get("attn_mask") == "float":
        call_kw["attn_mask"] = M.tensor(np.linspace(-1, 1, 9).reshape(3, 3))
    if "key_padding_mask" in call_kw:
        call_kw["key_padding_mask"] = M.tensor(np.array([[False, False, True],
                                                         [False, True, False]]))
    out, weights = m(*args, **call_kw)
    return m, x, out, weights


@pytest.mark.parametrize("case", sorted(CASES))
def test_multihead_attention_is_torchs_graph(M, case):
    m, x, out, weights = _run(M, case)
    tm, tx, tout, tweights = _run(torch, case)
    assert _graph(out.grad_fn) == _graph(tout.grad_fn)
    assert (weights is None) == (tweights is None)
    if weights is not None:
        assert _graph(weights.grad_fn) == _graph(tweights.grad_fn)
        np.testing.assert_allclose(np.asarray(weights.tolist()), tweights.detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
    if "dropout" in case:
        return  # the masks are torch's only where torch draws them without MKL
    np.testing.assert_allclose(np.asarray(out.tolist()), tout.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    out.pow(2).sum().backward()
    tout.pow(2).sum().backward()
    for (name, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters(), strict=True):
        np.testing.assert_allclose(np.asarray(p.grad.tolist()), tp.grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    np.testing.assert_allclose(np.asarray(x.grad.tolist()), tx.grad.numpy(), rtol=1e-9,
                               atol=1e-12)


def test_is_causal_without_a_mask_is_torchs_error(M):
    m = M.nn.MultiheadAttention(4, 2)
    x = M.randn(3, 2, 4)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        m(x, x, x, is_causal=True)


LAYERS = {
    "encoder": lambda M: M.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, dtype=M.float64),
    "encoder_batch_first_norm_first": lambda M: M.nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, batch_first=True, norm_first=True, dtype=M.float64),
    "decoder": lambda M: M.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, dtype=M.float64),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_the_transformer_layers_over_it_are_torchs_graphs(M, name):
    source = np.random.default_rng(1).standard_normal((3, 2, 8))
    results = []
    for lib in (M, torch):
        lib.manual_seed(0)
        layer = LAYERS[name](lib)
        x = lib.tensor(source, requires_grad=True)
        y = layer(x, x * 2) if name == "decoder" else layer(x)
        results.append((_graph(y.grad_fn), np.asarray(y.tolist())))
    assert results[0][0] == results[1][0]
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)
