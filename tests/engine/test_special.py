"""erf (engine/ops/elementwise/special.py) against Python's correctly rounded math.erf."""

import math

import numpy as np
import pytest
from gradserve.engine.ops.elementwise.special import erf


def test_erf_matches_math_erf_in_float64():
    xs = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 1e-300, 2.0, 6.0, -6.0]])
    want = np.array([math.erf(v) for v in xs])
    got = erf(np, xs)
    assert got.dtype == np.float64
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
    assert rel.max() < 5e-15


def test_erf_float32_stays_float32_and_within_a_few_ulp():
    xs = np.linspace(-5, 5, 5001, dtype=np.float32)
    got = erf(np, xs)
    assert got.dtype == np.float32
    want = np.array([math.erf(float(v)) for v in xs])
    assert np.abs(got - want).max() < 3e-7


@pytest.mark.parametrize("value,expected", [(np.inf, 1.0), (-np.inf, -1.0)])
def test_erf_limits(value, expected):
    assert erf(np, np.array([value]))[0] == expected


def test_erf_keeps_nan_and_signed_zero():
    out = erf(np, np.array([np.nan, -0.0]))
    assert np.isnan(out[0]) and out[1] == 0 and math.copysign(1, out[1]) == -1
