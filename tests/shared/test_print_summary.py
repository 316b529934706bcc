"""Printing a large tensor (API.md section 7): torch's summary text (threshold 1000, 3 edge
items), for many shapes and dtypes on both tensor kinds, at the cost of what is printed: a
remote tensor fetches only the elements shown."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch  # the oracle

SHAPES = [(1001,), (2000,), (7, 200), (3, 400), (10, 10, 11), (2, 3, 4, 50), (5000, 1),
          (1, 1, 1500), (6, 6, 6, 6), (40, 50)]
DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_, np.float16, np.uint8]


def _torch_text(x: np.ndarray) -> str:
    text = repr(torch.from_numpy(x)).replace("torch.", "gradserve.")
    # suffixes wrap at 80 columns and "gradserve." is longer: only where they wrap may differ
    return re.sub(r",\n +(?=(dtype|grad_fn|requires_grad|size|device)=)", ", ", text)


def _ours(t) -> str:
    return re.sub(r",\n +(?=(dtype|grad_fn|requires_grad|size|device)=)", ", ", repr(t))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_summary_text_is_torchs(M, shape):
    if M.ones(1).device != "cpu":
        pytest.skip("device= suffix: covered on the CPU")
    rng = np.random.default_rng(len(shape) * 1000 + shape[-1])
    for dtype in DTYPES:
        x = (rng.standard_normal(shape) * 50).astype(dtype)
        assert _ours(M.tensor(x)) == _torch_text(x), (shape, dtype)


def test_summary_of_a_tensor_with_history(M):
    x = np.linspace(-3, 3, 3000, dtype=np.float32).reshape(60, 50)
    ours = M.tensor(x, requires_grad=True) * 2
    theirs = torch.tensor(x, requires_grad=True) * 2
    expected = re.sub(r",\n +(?=grad_fn=)", ", ", repr(theirs))
    if ours.device != "cpu":
        expected = expected.replace("grad_fn=", f"device='{ours.device}', grad_fn=")
    assert _ours(ours) == expected


def test_remote_print_fetches_only_the_shown_elements(M):
    s = M.current_session()
    if s is None:
        pytest.skip("needs a session")
    big = M.ones(2048, 2048)  # 16 MB on the server
    s.synchronize()
    before = s.stats.bytes_down
    text = repr(big)
    assert s.stats.bytes_down - before < 64 * 1024
    assert text.count("...") == 7  # one per row shown, one for the rows left out
