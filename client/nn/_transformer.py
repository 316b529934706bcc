"""MultiheadAttention and TransformerEncoderLayer, composed of linear, matmul, softmax,
dropout and layer_norm ops, with torch's parameters, masks and defaults."""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError

from .._default import default_session
from . import functional as F
from . import init
from ._activation import GELU
from ._f_attention import merge_masks
from ._layers import Dropout, Linear, ReLU, new_parameter
from ._module import Module
from ._norm import LayerNorm


class NonDynamicallyQuantizableLinear(Linear):
    """torch's name for MultiheadAttention's output projection (a plain Linear)."""


class MultiheadAttention(Module):
    """Attention over `num_heads` heads of size embed_dim / num_heads, as torch's module:
    in_proj_weight (xavier uniform) and in_proj_bias (zeros) hold the q, k, v projections,
    out_proj projects back. Masks: attn_mask (L, S) or (N * heads, L, S), bool True = may
    not attend, or float added; key_padding_mask (N, S), True = padding.

    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
    >>> x = engine.randn(3, 5, 8)
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    (gradserve.Size([3, 5, 8]), gradserve.Size([3, 5, 5]))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None, session=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("add_bias_kv and add_zero_attn are not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.session = s = default_session(session)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = new_parameter(s, 3 * embed_dim, embed_dim, dtype=dtype)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            for name, cols in (("q_proj_weight", embed_dim), ("k_proj_weight", self.kdim),
                               ("v_proj_weight", self.vdim)):
                setattr(self, name, new_parameter(s, embed_dim, cols, dtype=dtype))
        if bias:
            self.in_proj_bias = new_parameter(s, 3 * embed_dim, dtype=dtype, init=init.zeros_)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias,
                                                        session=s, dtype=dtype)
        # torch draws out_proj's default init first, then the projections' (same values)
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight,
                  self.v_proj_weight):
            if w is not None:
                init.xavier_uniform_(w)
        if bias:
            init.zeros_(self.out_proj.bias)
        if device is not None:
            self.to(device)

    @staticmethod
    def _linear(x, w, b):
        """F.linear, but a non-contiguous input (batch_first's transpose) is one matmul op
        rather than torch's fold (a copy, mm, view): fewer ops keep a training step's batch
        whole on a session (attention's graph is gradserve's own, not torch's, anyway)."""
        if x.dim() == 3 and not x.is_contiguous():
            out = x._op("matmul", x, w.t())
            return out if b is None else out + b
        return F.linear(x, w, b)

    def _projections(self, query, key, value):
        e = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:  # self-attention: one product, then split
                qkv = self._linear(query, w, b)
                return qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
            wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return (self._linear(query, wq, bq), self._linear(key, wk, bk),
                self._linear(value, wv, bv))

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        if is_causal and attn_mask is None:
            raise InvalidArgumentError("Need attn_mask if specifying the is_causal hint.")
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:  # work in (L, N, E), torch's native layout
            same_kv = key is value
            same_qk = query is key
            query = query.transpose(0, 1)
            key = query if same_qk else key.transpose(0, 1)
            value = key if same_kv else value.transpose(0, 1)
        rows, batch, _ = query.shape
        cols = key.shape[0]
        q, k, v = self._projections(query, key, value)
        h, d = self.num_heads, self.head_dim
        q = q.reshape(rows, batch, h, d).permute(1, 2, 0, 3)  # (N, H, L, D)
        k = k.reshape(cols, batch, h, d).permute(1, 2, 0, 3)
        v = v.reshape(cols, batch, h, d).permute(1, 2, 0, 3)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
        mask = merge_masks(attn_mask, key_padding_mask, batch, h, rows, cols, scores)
        if mask is not None:
            scores = scores + mask
        weights = scores.softmax(-1)
        if self.dropout > 0.0:
            weights = F.dropout(weights, self.dropout, training=self.training)
        out = (weights @ v).permute(2, 0, 1, 3)
        out = out._op("reshape", out, shape=(rows, batch, self.embed_dim))  # one op: a copy
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, weights.squeeze(0) if unbatched else weights


_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with dropout, a residual connection
    and LayerNorm (after each block, or before with norm_first=True), as torch's.

    >>> layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32,
    ...                                    batch_first=True)
    >>> layer(engine.randn(2, 7, 16)).shape
    gradserve.Size([2, 7, 16])
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None, session=None) -> None:
        super().__init__()
        s = default_session(session)
        kw = dict(dtype=dtype, session=s)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise RuntimeError(f"activation should be relu/gelu, not {activation}")
            activation = _ACTIVATIONS[activation]
        if activation is F.relu or isinstance(activation, ReLU):
            self.activation_relu_or_gelu = 1
        elif activation is F.gelu or isinstance(activation, GELU):
            self.activation_relu_or_gelu = 2
        else:
            self.activation_relu_or_gelu = 0
        self.activation = activation
        if device is not None:
            self.to(device)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        out = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                             need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(out)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
