"""The vectorizable ``exp`` of Numba kernels: accuracy, IEEE special values, and softmax on it."""

from __future__ import annotations

import numpy as np
from numba import njit

from mlsys.kernels.cpu import nn
from mlsys.kernels.cpu.vmath import exp


@njit
def _exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = exp(x[i])


def _exp(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _exp_all(x, out)
    return out


def test_float32_exp_is_within_one_ulp_over_the_whole_range() -> None:
    x = np.concatenate([np.linspace(-87.3, 88.7, 200_001), np.random.default_rng(0).normal(0, 3, 10_000)])
    x = x.astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(_exp(x) - exact) / ulp) <= 1


def test_float32_exp_keeps_ieee_special_values() -> None:
    x = np.array([-np.inf, -1e4, -88.0, 0.0, 89.0, np.inf, np.nan], np.float32)
    got = _exp(x)
    np.testing.assert_array_equal(got[:6], [0, 0, 0, 1, np.inf, np.inf])
    assert np.isnan(got[6])


def test_float64_exp_is_the_library_exp() -> None:
    x = np.random.default_rng(1).normal(0, 20, 1000)
    np.testing.assert_allclose(_exp(x), np.exp(x), rtol=5e-16)  # libm's, to its last bit


def test_softmax_gives_exact_zeros_for_masked_logits_and_nan_for_nan() -> None:
    x = np.array([[0.0, -np.inf, 1.0, -1e4], [1.0, np.nan, 0.0, 2.0]], np.float32)
    out = nn.softmax_rows(x)
    assert out[0, 1] == 0 and out[0, 3] == 0
    np.testing.assert_allclose(out[0, [0, 2]], np.exp([0, 1]) / np.exp([0, 1]).sum(), rtol=1e-6)
    assert np.isnan(out[1]).all()
