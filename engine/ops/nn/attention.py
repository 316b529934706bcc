"""torch's CPU attention kernel `_scaled_dot_product_flash_attention_for_cpu`: what
F.scaled_dot_product_attention records on the CPU for 4-D query/key/value of one head size,
without dropout and without a mask that requires a gradient. One
ScaledDotProductFlashAttentionForCpuBackward0 node with edges to query, key and value (a mask
takes none). The backward is attention's, written with tensor methods (differentiable again).
Elsewhere torch takes its math path, whose softmax is `_safe_softmax` (here too).

    >>> from gradserve import engine
    >>> q = engine.ones(1, 1, 2, 4)
    >>> q._op("sdpa_flash_cpu", q, q, q, 0.0, is_causal=True, scale=0.5).shape
    gradserve.Size([1, 1, 2, 4])
"""

from __future__ import annotations

import math

from ...core.layout import is_contiguous, non_overlapping_and_dense
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes, normalize_dim
from ..edges import edges_of


def _meta(q, k, v, mask, is_causal=False, scale=None):
    batch = broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    shape = tuple(batch) + (q.shape[-2], v.shape[-1])
    # torch's kernel lays its output out as the query (MultiheadAttention's heads are a
    # transposed view, so the output's permute back to (L, N, E) is a view, not a copy)
    return Meta(shape, q.dtype, _query_layout(q) if shape == tuple(q.shape) else None)


def _query_layout(q) -> tuple[int, ...] | None:
    """The query's strides when it is laid out densely without overlap (a transpose, a
    permute), else None (contiguous)."""
    strides = q._strides
    if strides is None or is_contiguous(q.shape, strides) or \
            not non_overlapping_and_dense(q.shape, strides):
        return None
    return strides


def _scale(q, scale):
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def _causal_bias(xp, rows, cols, dtype):
    # top-left aligned, as torch's is_causal: row i may attend columns 0..i
    keep = xp.arange(cols)[None, :] <= xp.arange(rows)[:, None]
    return xp.where(keep, 0.0, -math.inf).astype(dtype)


def _additive(xp, mask, dtype):
    if mask.dtype == bool:
        return xp.where(mask, 0.0, -math.inf).astype(dtype)
    return mask.astype(dtype, copy=False)


def _probabilities(xp, q, k, mask, is_causal, scale):
    scores = (q @ xp.swapaxes(k, -1, -2)) * _scale(q, scale)
    if is_causal:
        scores = scores + _causal_bias(xp, q.shape[-2], k.shape[-2], q.dtype)
    if mask is not None:
        scores = scores + _additive(xp, mask, q.dtype)
    top = scores.max(-1, keepdims=True)
    e = xp.exp(scores - xp.where(xp.isfinite(top), top, 0))
    total = e.sum(-1, keepdims=True)
    return xp.where(total > 0, e / xp.where(total > 0, total, 1), 0).astype(q.dtype)


def _flash(xp, q, k, v, mask, is_causal=False, scale=None):
    # mask: a bool or float tensor, or the number 0.0 for none
    p = _probabilities(xp, q, k, mask if hasattr(mask, "shape") else None, is_causal, scale)
    out = (p @ v).astype(q.dtype, copy=False)
    if out.shape != q.shape or q.flags.c_contiguous:
        return out
    laid = xp.empty_like(q)  # the query's layout, as the shape rule says
    laid[...] = out
    return laid


flash = defop("sdpa_flash_cpu", infer=_meta,
              grad_name=edges_of("ScaledDotProductFlashAttentionForCpuBackward0", (0, 1, 2)),
              save=(0, 1, 2, 3), attrs=("is_causal", "scale"))(_flash)


@flash.def_backward
def _(ctx, g):
    q, k, v, mask = ctx.saved
    mask = mask if hasattr(mask, "shape") else None
    scale = _scale(q, ctx.attrs.get("scale"))
    scores = (q @ k.transpose(-2, -1)) * scale
    if ctx.attrs.get("is_causal", False):
        rows, cols = q.shape[-2], k.shape[-2]
        keep = q.new_ones(rows, cols).tril().bool()
        scores = scores.masked_fill(~keep, -math.inf)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype.name == "bool" else \
            scores + mask
    p = scores.softmax(-1)
    p = p.masked_fill(p.isnan(), 0.0)  # a row that may attend nothing gives nothing
    dp = g @ v.transpose(-2, -1)
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    needs = tuple(ctx.needs) + (False,) * 3
    return (ds @ k * scale if needs[0] else None,
            ds.transpose(-2, -1) @ q * scale if needs[1] else None,
            p.transpose(-2, -1) @ g if needs[2] else None)


# -- _safe_softmax: the math path's softmax ---------------------------------------------------
def _safe_softmax_meta(a, dim):
    normalize_dim(dim, len(a.shape))
    return Meta(tuple(a.shape), a.dtype)


def _safe_softmax(xp, a, dim):
    """softmax over dim, but 0 (not nan) along a row that is -inf throughout (a row that
    may attend nothing), as torch's `_safe_softmax`; other rows are softmax's bits."""
    if a.size == 0:
        return a.copy()
    top = a.max(axis=dim, keepdims=True)
    e = xp.exp(a - xp.where(top == -math.inf, 0, top).astype(a.dtype, copy=False))
    total = e.sum(axis=dim, keepdims=True)
    return e / xp.where(total == 0, 1, total).astype(a.dtype, copy=False)


safe_softmax = defop("_safe_softmax", infer=_safe_softmax_meta,
                     grad_name="SafeSoftmaxBackward0", save_output=True,
                     attrs=("dim",))(_safe_softmax)


@safe_softmax.def_backward
def _(ctx, g):
    out = ctx.output  # softmax's gradient; 0 along a fully masked row, where out is 0
    return (out * (g - (g * out).sum(ctx.attrs["dim"], keepdim=True)),)
