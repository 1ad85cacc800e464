"""The vectorizable ``exp``, ``tanh`` and ``erf`` of Numba kernels: accuracy, IEEE special
values, and softmax on ``exp``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from scipy.special import erf as exact_erf

from mlsys.kernels.cpu import nn
from mlsys.kernels.cpu.vmath import erf, exp, tanh


@njit
def _exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = exp(x[i])


def _exp(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _exp_all(x, out)
    return out


def test_float32_exp_is_within_1_01_ulp_over_the_whole_range() -> None:
    x = np.concatenate([np.linspace(-87.3, 88.7, 200_001), np.random.default_rng(0).normal(0, 3, 10_000)])
    x = x.astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(_exp(x) - exact) / ulp) <= 1.01  # float32 arithmetic throughout


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


@njit
def _tanh_all(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


@njit
def _erf_all(x, out):
    for i in range(x.shape[0]):
        out[i] = erf(x[i])


def _on(kernel, x):
    out = np.empty_like(x)
    kernel(x, out)
    return out


@pytest.mark.parametrize("kernel, exact, bound", [(_tanh_all, np.tanh, 3e-7), (_erf_all, exact_erf, 4e-7)])
def test_float32_tanh_and_erf_are_within_their_absolute_error_bounds(kernel, exact, bound) -> None:
    x = np.concatenate([np.linspace(-10, 10, 200_001), np.random.default_rng(2).normal(0, 2, 10_000),
                        [1e-30, -1e-30, 1e-5]]).astype(np.float32)
    got = _on(kernel, x).astype(np.float64)
    want = exact(x.astype(np.float64))
    assert np.max(np.abs(got - want)) <= bound
    tiny = np.abs(x) < 1e-3  # odd rational functions: relative accuracy near 0 as well
    np.testing.assert_allclose(got[tiny], want[tiny], rtol=1e-6)


@pytest.mark.parametrize("kernel", [_tanh_all, _erf_all])
def test_float32_tanh_and_erf_keep_ieee_special_values(kernel) -> None:
    x = np.array([-np.inf, -50.0, -0.0, 0.0, 50.0, np.inf, np.nan], np.float32)
    got = _on(kernel, x)
    np.testing.assert_array_equal(got[:6], [-1, -1, 0, 0, 1, 1])
    assert np.signbit(got[2]) and not np.signbit(got[3]) and np.isnan(got[6])


def test_float64_tanh_and_erf_are_the_library_functions() -> None:
    x = np.random.default_rng(3).normal(0, 3, 1000)
    np.testing.assert_array_equal(_on(_tanh_all, x), [math.tanh(v) for v in x])
    np.testing.assert_array_equal(_on(_erf_all, x), [math.erf(v) for v in x])
