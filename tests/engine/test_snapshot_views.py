"""A GPU session's transposed views (`weight.t()`, which every `F.linear` now records, as
torch's) are written at a drain and restored sharing their base's buffer; a view of part of
another tensor's buffer is still refused. Runs on the seam's cupy double without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from gradserve import engine
from gradserve.engine import seam

DEV = "cuda:0"


def _v(t):
    return t.detach().cpu().numpy()


@pytest.fixture
def gpu():
    if engine.cuda_device_count() == 0:
        pytest.skip("no CUDA device (GRADSERVE_FAKE_CUDA=0 and no GPU)")
    return DEV


def test_transposed_views_are_written_and_share_their_base_again(gpu):
    w = engine.randn(4, 3).to(gpu).requires_grad_()
    x = engine.randn(2, 3, 5).to(gpu)
    tensors = {"w": w, "wt": w.t(), "wtt": w.t().t(), "wd": w.detach(), "x": x,
               "xp": x.permute(2, 0, 1)}
    bound, _ = seam.unpack(*seam.pack(tensors, gpu, engine.Generator()), gpu)
    for k, t in tensors.items():
        np.testing.assert_array_equal(_v(bound[k]), _v(t))
        assert tuple(bound[k].shape) == tuple(t.shape)
    assert type(bound["wt"].grad_fn).__name__ == "TBackward0"
    with engine.no_grad():
        bound["w"].add_(1.0)  # one buffer again: the views see it
    np.testing.assert_array_equal(_v(bound["wt"]), _v(bound["w"]).T)
    np.testing.assert_array_equal(_v(bound["xp"]), _v(bound["x"]).transpose(2, 0, 1))


def test_a_view_of_part_of_a_buffer_is_still_refused(gpu):
    w = engine.randn(4, 3).to(gpu)
    with pytest.raises(seam.NotQuiet, match="views part of another's storage"):
        seam.pack({"w": w, "part": w[:2]}, gpu, engine.Generator())
