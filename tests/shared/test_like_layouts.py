"""The `*_like` factories lay their result out as torch's (memory_format=preserve_format): the
input's strides when it is dense (`x.t()`, a permute), else dense in the order of its
strides; random draws land in that memory order, as torch's `empty_like(x).normal_()`. On
engine tensors and in a live session (`M`); torch is the oracle."""

from __future__ import annotations

import pytest
import torch  # the oracle

INPUTS = {
    "transposed": lambda L: L.arange(12, dtype=L.float32).reshape(3, 4).t(),
    "permuted": lambda L: L.arange(24, dtype=L.float32).reshape(2, 3, 4).permute(2, 0, 1),
    "sliced": lambda L: L.arange(24, dtype=L.float32).reshape(2, 3, 4)[:, :, ::2],
    "expanded": lambda L: L.ones(3, 1).expand(3, 4),
    "channels_last": lambda L: L.arange(48, dtype=L.float32).reshape(1, 4, 3, 4)
    .permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
    "contiguous": lambda L: L.arange(24, dtype=L.float32).reshape(2, 3, 4),
    "large_transposed": lambda L: L.arange(40, dtype=L.float32).reshape(4, 10).t(),
}

LIKE = {
    "zeros_like": lambda L, x: L.zeros_like(x),
    "ones_like": lambda L, x: L.ones_like(x),
    "empty_like": lambda L, x: L.empty_like(x),
    "full_like": lambda L, x: L.full_like(x, 2.5),
    "zeros_like_float64": lambda L, x: L.zeros_like(x, dtype=L.float64, requires_grad=True),
    "rand_like": lambda L, x: L.rand_like(x),
    "randn_like": lambda L, x: L.randn_like(x),
    "randint_like": lambda L, x: L.randint_like(x, 10),
}


@pytest.mark.parametrize("like", sorted(LIKE))
@pytest.mark.parametrize("source", sorted(INPUTS))
def test_like_factories_keep_the_layout_as_torch(M, source, like):
    def run(L):
        L.manual_seed(0)
        out = LIKE[like](L, INPUTS[source](L))
        flat = out.reshape(-1)
        return (tuple(out.stride()), out.is_contiguous(), out.requires_grad, out.is_leaf,
                None if like == "empty_like" else flat.tolist(),
                None if flat.grad_fn is None else type(flat.grad_fn).__name__)

    ours, theirs = run(M), run(torch)
    assert ours[:4] == theirs[:4] and ours[5] == theirs[5]
    if ours[4] is not None:
        assert ours[4] == pytest.approx(theirs[4], rel=2e-7, abs=1e-7)


def test_a_like_factory_refuses_strides_that_are_not_dense(ns):
    """What the factory op checks of the strides it is sent (they cross the wire)."""
    x = ns.zeros(1)
    for strides in ((1, 1), (4, 2), (2, 1, 1), (-1, 3)):
        with pytest.raises(ns.InvalidArgumentError, match="densely"):
            x._op("zeros", shape=(3, 4), dtype="float32", device=ns.device, strides=strides)
            ns.sync()
