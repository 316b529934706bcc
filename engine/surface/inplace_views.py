"""torch's in-place view ops: `transpose_`, `swapaxes_`, `swapdims_`, `t_`. The tensor's own
dims change; its storage, and the views of it made before, do not.

As torch's, the tensor stays what it was (a root stays a root, a view stays a view of its
root, its view steps gaining this one), its version goes up (so views of it made before see
an AsStridedBackward0 over its new history, and a saved copy of it is stale), and, when it
needs a gradient under grad mode, its grad_fn becomes the op's in-place node
(`TransposeBackward1`, `TBackward1`) over its previous history; under no_grad its grad_fn is
left as it was. A root records the change (core/copyslices.relaid) so that the views made
before still replay from its old layout.

Each tensor kind changes its own layout (`_relayout`): the engine's array becomes the
view of itself, a session's tensor sends the command, whose server runs this on its tensor.
"""

from __future__ import annotations

from ..core import grad_mode as _grad_mode
from ..core.autograd import node_class
from ..core.copyslices import relaid
from ..core.errors import AutogradError
from ..core.meta import edge
from ..core.registry import get_op
from ..core.shape import normalize_dim

_NODES = {"transpose": "TransposeBackward1", "t": "TBackward1"}


def relayout_(t, name: str, attrs: dict):
    """`t` with its dims laid out as the view op `name` would, in place; returns t."""
    op = get_op(name)
    meta = op.infer(t, **attrs)  # torch's checks and errors for the op
    record = _grad_mode._state.enabled and t.requires_grad
    if record and t._rg and t.grad_fn is None:
        raise AutogradError(
            "a leaf Variable that requires grad is being used in an in-place operation.")
    node = None
    if record:  # the edge to t's history before the change (a stale view's refreshed first)
        node = node_class(_NODES[name])(op, _NODES[name], (edge(t),), [t.shape], [t.dtype],
                                        (), attrs, t._device)
    t._relayout(name, attrs, meta)
    t._strides = meta.strides
    t._vc.value += 1
    step = (name, attrs, 0)
    if t._base is None:  # the inverse of a transpose is itself
        relaid(t, t._vc.value, step)
    elif t._view_steps is not None:
        t._view_steps = t._view_steps + (step,)
    if node is not None:
        t._grad_fn, t._output_nr = node, 0
    t._view_version = t._vc.value
    return t


def transpose_(t, dim0, dim1):
    n = max(len(t.shape), 1)
    return relayout_(t, "transpose", {"dim0": normalize_dim(int(dim0), n),
                                      "dim1": normalize_dim(int(dim1), n)})


def t_(t):
    return relayout_(t, "t", {})


class InplaceViews:
    """The in-place view methods of both tensor kinds."""

    __slots__ = ()

    def transpose_(self, dim0, dim1):
        """Swap two dims in place (a view of the same storage), as torch's transpose_."""
        return transpose_(self, dim0, dim1)

    swapaxes_ = swapdims_ = transpose_

    def t_(self):
        """Transpose a matrix (or leave a vector or scalar) in place, as torch's t_."""
        return t_(self)
