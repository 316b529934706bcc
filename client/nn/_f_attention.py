"""Functional attention (re-exported by gradserve.nn.functional): torch's CPU flash kernel as
one op, else torch's math path composed of tensor ops (matmul, _safe_softmax, where,
dropout), so it runs wherever its inputs live."""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError

from .._default import new_like

_NEG_INF = float("-inf")


def causal_mask(like, rows: int, cols: int):
    """A (rows, cols) bool tensor, True on and below the diagonal (what may be attended),
    made where `like` lives.

    >>> causal_mask(engine.ones(1), 2, 3)
    tensor([[ True, False, False],
            [ True,  True, False]])
    """
    i = new_like(like, "arange", rows, dtype="int64").reshape(rows, 1)
    j = new_like(like, "arange", cols, dtype="int64")
    return j <= i


def _flash_for_cpu(query, key, value, attn_mask, dropout_p) -> bool:
    """Whether torch's CPU backend choice is its flash kernel (one node, which gradserve runs
    on any device): 4-D inputs of one batch, head count and head size, no dropout, and a mask
    (if any) that takes no gradient and is 2-D or 4-D."""
    if dropout_p > 0.0 or any(t.dim() != 4 for t in (query, key, value)):
        return False
    if not query.dtype.is_floating_point:
        return False
    if len({tuple(t.shape[:2]) for t in (query, key, value)}) != 1:
        return False
    if len({t.shape[-1] for t in (query, key, value)}) != 1 or key.shape[-2] != value.shape[-2]:
        return False
    if attn_mask is not None and (attn_mask.requires_grad or attn_mask.dim() not in (2, 4)):
        return False
    return all(t.shape[-2] > 0 for t in (query, key))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None):
    """softmax(query @ key^T * scale + mask) @ value over the last two dims, with torch's
    mask conventions (bool: True may attend; float: added) and scale 1/sqrt(E) by default.

    >>> q = engine.ones(1, 2, 4)
    >>> F.scaled_dot_product_attention(q, q, engine.tensor([[[1.] * 4, [3.] * 4]])).shape
    gradserve.Size([1, 2, 4])
    """
    if is_causal and attn_mask is not None:
        raise InvalidArgumentError("_scaled_dot_product_attention: Explicit attn_mask should not "
                                   "be set when is_causal=True")
    if _flash_for_cpu(query, key, value, attn_mask, dropout_p):
        return query._op("sdpa_flash_cpu", query, key, value,
                         0.0 if attn_mask is None else attn_mask, is_causal=bool(is_causal),
                         scale=None if scale is None else float(scale))
    return _math(query, key, value, attn_mask, dropout_p, is_causal, scale)


def _math(query, key, value, attn_mask, dropout_p, is_causal, scale):
    """aten's `_scaled_dot_product_attention_math`, op for op (its graph is torch's): both
    operands scaled by the square root of the scale, a bool mask turned into an additive one
    and added in place, `_safe_softmax`, dropout (a multiply), the product with value."""
    from . import functional as F  # functional re-exports this module's function

    root = math.sqrt(1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale))
    if is_causal:
        attn_mask = causal_mask(query, query.shape[-2], key.shape[-2])
    if attn_mask is not None and not attn_mask.dtype.is_floating_point:
        if attn_mask.dtype.name != "bool":
            raise InvalidArgumentError(
                f"attn_mask must be bool or float, got {attn_mask.dtype.name}")
        zero = new_like(query, "zeros", *attn_mask.shape)
        attn_mask = zero._op("where", attn_mask.logical_not(), _NEG_INF, zero)
    kt = key.transpose(-2, -1)
    attn = query._op("mul_scalar", query, other=root) @ kt._op("mul_scalar", kt, other=root)
    if attn_mask is not None:
        attn = attn.add_(attn_mask)
    attn = attn._op("_safe_softmax", attn, dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, dropout_p, training=True)
    return attn @ value
