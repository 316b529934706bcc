"""Fused neural-network ops: linear, the losses and dropout's mask."""

from __future__ import annotations

import numpy as np

from ...core.dtype import as_dtype, int64
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop, fresh
from ...core.shape import broadcast_shapes
from ..edges import edges_of

_REDUCTIONS = ("mean", "sum", "none")


def _linear_meta(x, w, b=None):
    if len(w.shape) != 2:
        raise InvalidArgumentError(f"linear: weight must be 2-D, got {len(w.shape)}-D")
    if not x.shape or x.shape[-1] != w.shape[1]:
        rows = int(np.prod(x.shape[:-1])) if x.shape else 1
        raise InvalidArgumentError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{x.shape[-1] if x.shape else 1}"
            f" and {w.shape[1]}x{w.shape[0]})"
        )
    if b is not None and tuple(b.shape) not in ((w.shape[0],), ()):
        raise InvalidArgumentError(f"linear: bias of shape {list(b.shape)} does not match "
                                   f"{w.shape[0]} output features")
    if x.dtype is not w.dtype or (b is not None and b.dtype is not w.dtype):
        raise InvalidArgumentError("linear: input, weight and bias must have the same dtype")
    return Meta(tuple(x.shape[:-1]) + (w.shape[0],), w.dtype)


def _linear(xp, x, w, b=None):
    out = x @ w.T
    if b is not None:
        out += b  # in place: the product is a fresh array
    return out


def _linear_name(x, w, b=None):
    if len(x.shape) == 2:
        return "AddmmBackward0" if b is not None else "MmBackward0"
    return "ViewBackward0" if b is not None else "UnsafeViewBackward0"


linear = defop("linear", infer=_linear_meta, grad_name=_linear_name,
               grad_uses=((1,), (0,), ()), attrs=())(_linear)  # the bias is an optional input


@linear.def_backward
def _(ctx, g):
    x, w = ctx.saved
    gx = g @ w if ctx.needs[0] else None
    gw = gb = None
    g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])  # a batch of rows either way
    if ctx.needs[1]:
        gw = g2.t() @ (x if x.ndim == 2 else x.reshape(-1, x.shape[-1]))
    if len(ctx.needs) > 2 and ctx.needs[2]:
        gb = g2.sum(0)
    return (gx, gw, gb)[: len(ctx.needs)]


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise InvalidArgumentError(f"{reduction} is not a valid value for reduction")


def _mse_meta(a, b, reduction="mean"):
    _check_reduction(reduction)
    shape = broadcast_shapes(a.shape, b.shape)
    return Meta(shape if reduction == "none" else (), a.dtype)


def _mse(xp, a, b, reduction="mean"):
    d = a - b
    sq = d * d
    if reduction == "none":
        return sq
    return sq.mean() if reduction == "mean" else sq.sum()


mse_loss = defop("mse_loss", infer=_mse_meta, grad_name="MseLossBackward0", save=(0, 1))(_mse)


@mse_loss.def_backward
def _(ctx, g):
    a, b = ctx.saved
    d = a - b
    scale = 2.0 / d.numel() if ctx.attrs.get("reduction", "mean") == "mean" else 2.0
    gd = g * d * scale
    return (gd if ctx.needs[0] else None, -gd if ctx.needs[1] else None)


def _class_meta(logits, target, reduction="mean", ignore_index=-100):
    _check_reduction(reduction)
    if not logits.dtype.is_floating_point:
        raise InvalidArgumentError("expected a floating point input")
    if target.dtype is not int64:
        raise InvalidArgumentError(
            f"expected scalar type Long but found {as_dtype(target.dtype).name}"
        )
    if len(logits.shape) not in (1, 2):
        raise InvalidArgumentError(
            f"input must be 1-D (C) or 2-D (N, C), got {len(logits.shape)}-D"
        )
    batch = tuple(logits.shape[:-1])
    if tuple(target.shape) != batch:
        raise InvalidArgumentError(
            f"Expected input batch_size ({batch[0] if batch else 1}) to match target batch_size "
            f"({target.shape[0] if target.shape else 1})."
        )
    return Meta(batch if reduction == "none" else (), logits.dtype)


_ROWS: dict[int, np.ndarray] = {}  # arange(n) per batch size: the row half of the gather


def _rows(n: int) -> np.ndarray:
    rows = _ROWS.get(n)
    if rows is None:
        if len(_ROWS) > 64:  # batch sizes vary little; keep the table small if they do
            _ROWS.clear()
        rows = _ROWS[n] = np.arange(n)
        rows.flags.writeable = False
    return rows


def _all_kept(xp, t, ignore_index) -> bool:
    """Whether no row is ignored and none can wrap (numpy targets, all >= 0 > ignore_index,
    torch's default -100): then the gather needs no mask, and numpy's own IndexError marks
    a target >= classes."""
    return xp is np and ignore_index < 0 and t.size > 0 and np.minimum.reduce(t) >= 0


def _picked(logp2, t):
    """-logp2[i, t_i] for numpy rows that are all kept (`_all_kept`); None when a target is
    out of range (numpy's IndexError: the masked path raises torch's error)."""
    try:
        picked = logp2[_rows(t.size), t]
    except IndexError:
        return None
    return np.negative(picked, out=picked)


def _mean_of_all(d):
    """The mean of `d` over rows all kept. numpy's float / int64 scalar division is
    float64's (exact operands, one rounding), without numpy's scalar promotion per call: the
    same bits."""
    return np.float64(float(d.sum()) / d.size)


def _pick(xp, logp, target, ignore_index):
    """-logp[i, target_i] with ignored rows at 0; also the mask of rows kept (None: all)."""
    logp2 = logp.reshape(-1, logp.shape[-1])
    t = target.reshape(-1)
    if _all_kept(xp, t, ignore_index):
        picked = _picked(logp2, t)
        if picked is not None:
            return picked.reshape(target.shape), None
    keep = t != ignore_index
    safe = xp.where(keep, t, 0)
    bad = (safe < 0) | (safe >= logp2.shape[1])
    if bad.any():
        raise IndexError(f"Target {int(safe[bad][0])} is out of bounds.")
    # one fancy index, not take_along_axis (Python around the same gather)
    picked = -logp2[xp.arange(t.size), safe] * keep
    return picked.reshape(target.shape), keep.reshape(target.shape)


def _reduce_loss(d, keep, reduction):
    """Per-row values `d` (summed over a trailing class axis when they have one more axis
    than `keep`) reduced as the loss was: kept as rows, summed, or averaged over kept rows."""
    if keep is None:  # every row kept (numpy): the count is the rows'
        if reduction != "mean":
            return d if reduction == "none" else d.sum()
        return _mean_of_all(d)
    if reduction == "none":
        return d.sum(-1) if d.ndim > keep.ndim else d
    return d.sum() if reduction == "sum" else d.sum() / keep.sum()


def _log_softmax_rows(xp, logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    total = xp.exp(shifted).sum(axis=-1, keepdims=True)
    if shifted.dtype.kind != "f":
        return shifted - xp.log(total)
    shifted -= xp.log(total, out=total)  # into the fresh arrays: the same ufuncs, same bits
    return shifted


def _cross_entropy(xp, logits, target, reduction="mean", ignore_index=-100):
    losses, keep = _pick(xp, _log_softmax_rows(xp, logits), target, ignore_index)
    return _reduce_loss(losses, keep, reduction)


def _nll(xp, logp, target, reduction="mean", ignore_index=-100):
    if reduction == "mean" and logp.ndim == 2 and _all_kept(xp, target, ignore_index):
        # the training step's case: _pick's and _reduce_loss's steps without their reshapes
        picked = _picked(logp, target)
        if picked is not None:
            return _mean_of_all(picked)
    losses, keep = _pick(xp, logp, target, ignore_index)
    return _reduce_loss(losses, keep, reduction)


_NLL = edges_of("NllLossBackward0", (0,))  # the target has no edge in torch's node
cross_entropy = defop("cross_entropy", infer=_class_meta, grad_name=_NLL,
                      save=(0, 1))(_cross_entropy)
nll_loss = defop("nll_loss", infer=_class_meta, grad_name=_NLL,
                 save=(0, 1))(_nll)


def _onehot_scaled(ctx, g, target, like):
    """(one-hot of target, masked) * g / count: the shared part of both losses' gradients."""
    reduction = ctx.attrs.get("reduction", "mean")
    ignore = ctx.attrs.get("ignore_index", -100)
    classes = like.shape[-1]
    keep = target != ignore
    positions = like._op("arange", start=0, end=classes, step=1, dtype="int64",
                         device=like.device)
    onehot = (target.unsqueeze(-1) == positions) * keep.unsqueeze(-1)
    if g is None:
        return onehot, keep, None
    if reduction == "none":
        scale = g.unsqueeze(-1)
    elif reduction == "sum":
        scale = g
    else:
        scale = g / keep.sum()
    return onehot, keep, scale


@cross_entropy.def_backward
def _(ctx, g):
    logits, target = ctx.saved
    return (logits._op("cross_entropy_grad", logits, target, g, **ctx.attrs),)


def _ce_grad_meta(logits, target, g, reduction="mean", ignore_index=-100):
    _class_meta(logits, target, reduction, ignore_index)
    return fresh((logits.shape, logits.dtype, None))


def _ce_grad(xp, logits, target, g, reduction="mean", ignore_index=-100):
    """d loss / d logits in one pass: (softmax - onehot) * g / count over the kept rows."""
    p = logits - logits.max(axis=-1, keepdims=True)
    p = xp.exp(p, out=p) if p.dtype.kind == "f" else xp.exp(p)
    p /= p.sum(axis=-1, keepdims=True)
    flat = p.reshape(-1, p.shape[-1])
    t = target.reshape(-1)
    if _all_kept(xp, t, ignore_index):
        rows = _rows(t.size)
        flat[rows, t] -= 1
    else:
        keep = t != ignore_index
        rows = xp.nonzero(keep)[0]
        if rows.size != t.size:
            flat *= keep[:, None]
        flat[rows, t[rows]] -= 1
    _scale_rows(flat, g, rows, reduction)
    return p


def _scale_rows(flat, g, rows, reduction: str) -> None:
    """Multiply the per-row gradients by the upstream `g` as `reduction` spread the loss:
    row by row ("none"), whole ("sum"), or over the kept rows ("mean")."""
    if reduction == "none":
        flat *= g.reshape(-1, 1)
    elif reduction == "sum":
        flat *= g
    else:
        flat *= g / rows.size


# The gradient of cross_entropy as one op (the step's backward runs it once instead of a
# dozen small ops); its own backward, for double backward, is written in engine ops.
cross_entropy_grad = defop("cross_entropy_grad", infer=_ce_grad_meta,
                           grad_name="NllLossBackwardBackward0", save=(0, 1, 2))(_ce_grad)


@cross_entropy_grad.def_backward
def _(ctx, h):
    logits, target, g = ctx.saved
    onehot, keep, scale = _onehot_scaled(ctx, g, target, logits)
    p = logits.softmax(-1)
    kept = keep.unsqueeze(-1)
    gl = gg = None
    if ctx.needs[0]:  # softmax's Jacobian applied to the scaled upstream gradient
        hs = h * scale * kept
        gl = p * (hs - (hs * p).sum(-1, keepdim=True))
    if ctx.needs[2]:
        d = (p * kept - onehot) * h
        gg = _reduce_loss(d, keep, ctx.attrs.get("reduction", "mean"))
    return gl, None, gg


@nll_loss.def_backward
def _(ctx, g):
    logp, target = ctx.saved
    return (logp._op("nll_loss_grad", logp, target, g, **ctx.attrs),)


def _nll_grad(xp, logp, target, g, reduction="mean", ignore_index=-100):
    """d loss / d logp in one pass: -g / count at each kept row's target, 0 elsewhere, as
    torch scatters it (0 even where g is not finite; logp gives only the shape and dtype: the
    loss is linear in it)."""
    out = xp.zeros(logp.shape, dtype=logp.dtype)
    if reduction == "mean" and logp.ndim == 2 and _all_kept(xp, target, ignore_index):
        out[_rows(target.size), target] = -(g / target.size)  # the step's case, no reshapes
        return out
    flat = out.reshape(-1, out.shape[-1])
    t = target.reshape(-1)
    if _all_kept(xp, t, ignore_index):
        rows, cols = _rows(t.size), t
    else:
        rows = xp.nonzero(t != ignore_index)[0]
        cols = t[rows]
    if reduction == "none":
        flat[rows, cols] = -g.reshape(-1)[rows]
    else:
        flat[rows, cols] = -(g if reduction == "sum" else g / rows.size)
    return out


# cross_entropy is nll_loss over log_softmax (torch's graph, and what it saves): this keeps
# that backward one op, as cross_entropy_grad is for the fused form.
nll_loss_grad = defop("nll_loss_grad", infer=_ce_grad_meta,
                      grad_name="NllLossBackwardBackward0", save=(1,))(_nll_grad)


@nll_loss_grad.def_backward
def _(ctx, h):
    target, = (s for s in ctx.saved if s is not None)
    gg = None
    if ctx.needs[2]:
        onehot, keep, _ = _onehot_scaled(ctx, None, target, h)
        d = -(onehot * h)
        gg = _reduce_loss(d, keep, ctx.attrs.get("reduction", "mean"))
    return None, None, gg


def _dropout_meta(x, p):
    if not 0 <= p <= 1:
        raise InvalidArgumentError(f"dropout probability has to be between 0 and 1, but got {p}")
    return Meta(x.shape, x.dtype)


def _dropout_mask(xp, x, p, gen):
    """torch's CPU dropout noise: empty_like(x).bernoulli_(1 - p).div_(1 - p), in x's dtype
    (and no draw at all for p == 1)."""
    if p == 1:
        return xp.zeros_like(x)
    keep = gen("bernoulli_scalar", x.shape, x.dtype, 1 - p)
    return keep / x.dtype.type(1 - p)


defop("dropout_mask", infer=_dropout_meta, random=True, attrs=("p",))(_dropout_mask)
