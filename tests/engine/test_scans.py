"""The scans' prefix scan by doubling (the path for array modules without ufunc.accumulate,
such as cupy) against numpy's accumulate, with nans and lengths that are not powers of 2."""

from __future__ import annotations

import types

import numpy as np
import pytest
from gradserve.engine.ops.reductions.scans import _inclusive_scan

# an array module that is not numpy itself, so the doubling path runs
_XP = types.SimpleNamespace(moveaxis=np.moveaxis, maximum=np.maximum, minimum=np.minimum,
                            logaddexp=np.logaddexp)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the nan on purpose
@pytest.mark.parametrize("ufunc", ["maximum", "minimum", "logaddexp"])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5, 4), 1), ((2, 9), -1), ((1,), 0),
                                       ((4, 0), 1)])
def test_doubling_scan_matches_accumulate(ufunc, shape, dim):
    a = np.random.default_rng(len(shape)).standard_normal(shape)
    if a.size > 3:
        a.flat[2] = np.nan
    ours = _inclusive_scan(_XP, a, dim % a.ndim, ufunc)
    np.testing.assert_allclose(ours, getattr(np, ufunc).accumulate(a, axis=dim), rtol=1e-12,
                               equal_nan=True)
