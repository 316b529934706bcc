"""torch's `_reshape_alias`: what `reshape` of a tensor that is not contiguous but can be
viewed in the new shape records (ReshapeAliasBackward0, where a contiguous tensor's reshape is
ViewBackward0 and one that must be copied UnsafeViewBackward0). tensordot and einsum reshape
through it as torch's compositions do.

    >>> from gradserve import engine
    >>> x = engine.ones(2, 3, requires_grad=True).t()
    >>> x._op("_reshape_alias", x, shape=(3, 2)).grad_fn.name()
    'ReshapeAliasBackward0'
"""

from __future__ import annotations

from ...core.registry import defop
from ...core.shape import infer_reshape
from .views import _reshape_back, _view_meta

reshape_alias = defop("_reshape_alias", infer=_view_meta, grad_name="ReshapeAliasBackward0",
                      view=True, attrs=("shape",))(
    lambda xp, a, shape: xp.reshape(a, infer_reshape(a.shape, shape)))
reshape_alias.def_backward(_reshape_back)
