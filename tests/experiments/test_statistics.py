"""The platform's statistics against closed forms, published tables and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mlsys.experiments import (
    Moments,
    achieved_power,
    always_valid_interval,
    always_valid_p,
    crossing_probability,
    cuped,
    cuped_theta,
    difference,
    group_sequential_bounds,
    minimum_detectable_effect,
    peeking_error_rate,
    sample_size,
)


def test_moments_reproduce_numpy(rng) -> None:
    y, x = rng.gamma(2.0, 1.5, 500), rng.normal(size=500)
    arm = Moments.of(y, x)
    assert arm.mean == pytest.approx(y.mean()) and arm.var == pytest.approx(y.var(ddof=1))
    cov, var_x = arm.covariances()
    assert cov == pytest.approx(np.cov(x, y)[0, 1]) and var_x == pytest.approx(x.var(ddof=1))
    daily = Moments.of(y.reshape(5, 100), axis=1)
    running = daily.cumulative(axis=0)
    assert running.n.tolist() == [100, 200, 300, 400, 500]
    assert running.mean[-1] == pytest.approx(y.mean())
    assert running.var[2] == pytest.approx(y[:300].var(ddof=1))


def test_difference_is_welchs_z_test(rng) -> None:
    a, b = rng.normal(10, 2, 800), rng.normal(10.3, 3, 1200)
    est = difference(Moments.of(a), Moments.of(b), alpha=0.1)
    se = math.sqrt(a.var(ddof=1) / 800 + b.var(ddof=1) / 1200)
    assert est.effect == pytest.approx(b.mean() - a.mean()) and est.se == pytest.approx(se)
    assert est.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue, rel=0.01)  # t ~ z
    assert (est.high - est.low) / 2 == pytest.approx(stats.norm.isf(0.05) * se)


def test_cuped_uses_a_pooled_theta_and_keeps_the_effect(rng) -> None:
    x = rng.normal(5, 2, 4000)
    y = 2 + 0.8 * x + rng.normal(0, 1, 4000) + np.where(np.arange(4000) < 2000, 0.0, 0.25)
    control, treatment = Moments.of(y[:2000], x[:2000]), Moments.of(y[2000:], x[2000:])
    pooled = np.cov(x, y - np.where(np.arange(4000) < 2000, 0.0, 0.25))[0, 1] / x.var(ddof=1)
    assert cuped_theta(control, treatment) == pytest.approx(pooled, rel=0.02)
    plain, adjusted = difference(control, treatment), cuped(control, treatment)
    rho = np.corrcoef(x, y)[0, 1]
    assert adjusted.se / plain.se == pytest.approx(math.sqrt(1 - rho**2), rel=0.05)
    assert abs(adjusted.effect - 0.25) < 3 * adjusted.se


def test_sample_size_power_and_mde_agree() -> None:
    n = sample_size(std=1.0, mde=0.1)
    assert n == math.ceil(2 * (stats.norm.isf(0.025) + stats.norm.ppf(0.8)) ** 2 / 0.01) == 1570
    assert achieved_power(n, 1.0, 0.1) >= 0.8 > achieved_power(n - 10, 1.0, 0.1)
    assert minimum_detectable_effect(n, 1.0) == pytest.approx(0.1, rel=1e-3)
    assert achieved_power(n, 1.0, 0.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="mde must be a finite number > 0, got 0"):
        sample_size(1.0, 0)
    with pytest.raises(ValueError, match=r"power must be in \(alpha/2, 1\), got 1.5"):
        sample_size(1.0, 0.1, power=1.5)


@pytest.mark.parametrize("looks, rate", [(1, 0.05), (2, 0.083), (3, 0.107), (4, 0.126), (5, 0.142),
                                         (10, 0.193), (20, 0.248), (50, 0.320)])
def test_peeking_matches_the_repeated_significance_table(looks, rate) -> None:
    # Armitage, McPherson and Rowe (1969), as tabulated by Jennison and Turnbull (2000), Table 1.1
    assert peeking_error_rate(looks) == pytest.approx(rate, abs=6e-4)


@pytest.mark.parametrize("spending, published", [
    # Lan-DeMets bounds for five equally spaced looks, two-sided 0.05 (0.025 a side): the values
    # of gsDesign's sfLDOF / sfLDPocock at one-sided alpha 0.025, and of ldbounds
    ("obrien-fleming", [4.877, 3.357, 2.680, 2.290, 2.031]),
    ("pocock", [2.438, 2.427, 2.410, 2.397, 2.386]),
])
def test_spending_bounds_match_published_values(spending, published) -> None:
    fractions = np.arange(1, 6) / 5
    bounds = group_sequential_bounds(fractions, 0.05, spending)
    assert bounds == pytest.approx(published, abs=6e-4)
    assert crossing_probability(bounds, fractions) == pytest.approx(0.05, abs=1e-6)
    assert group_sequential_bounds([1.0])[0] == pytest.approx(stats.norm.isf(0.025))


def test_bounds_hold_alpha_on_simulated_brownian_paths(rng) -> None:
    # independent of the numerical integration: Z_k = B(t_k) / sqrt(t_k) for a Brownian motion B
    fractions = np.array([0.1, 0.25, 0.5, 0.6, 0.8, 1.0])
    steps = rng.normal(size=(400_000, 6)) * np.sqrt(np.diff(fractions, prepend=0.0))
    z = np.cumsum(steps, axis=1) / np.sqrt(fractions)
    for spending in ("obrien-fleming", "pocock"):
        crossed = (np.abs(z) >= group_sequential_bounds(fractions, 0.05, spending)).any(axis=1).mean()
        assert abs(crossed - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 400_000)
    naive = (np.abs(z) >= 1.959964).any(axis=1).mean()
    assert abs(naive - crossing_probability([1.959964] * 6, fractions)) < 4 * np.sqrt(0.15 / 400_000)


def normal_streams(rng, streams: int, looks: int, per_look: int, effect: float) -> tuple[Moments, Moments]:
    """Cumulative moments of ``streams`` experiments with unit-variance normal users."""
    def arm(shift: float) -> Moments:
        draws = rng.normal(shift, 1.0, size=(streams, looks, per_look))
        return Moments.of(draws, axis=2).cumulative()

    return arm(0.0), arm(effect)


def test_always_valid_p_keeps_its_error_rate_at_every_look(rng) -> None:
    control, treatment = normal_streams(rng, 2000, 50, 40, 0.0)
    p = always_valid_p(control, treatment, tau=0.1)
    assert np.all(np.diff(p, axis=1) <= 0)  # a p-value that only falls
    false_positives = (p <= 0.05).any(axis=1).mean()
    assert false_positives <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)
    naive = (difference(control, treatment).p_value <= 0.05).any(axis=1).mean()
    assert naive > 0.2  # the same streams, watched naively at 50 looks (0.32 in the table)
    low, high = always_valid_interval(control, treatment, tau=0.1)
    assert ((low > 0) | (high < 0)).any(axis=1).mean() == pytest.approx(false_positives)
    assert np.all(np.diff(high - low, axis=1) <= 1e-12)


def test_always_valid_p_finds_real_effects_at_a_price_in_power(rng) -> None:
    control, treatment = normal_streams(rng, 400, 50, 40, 0.1)
    found = (always_valid_p(control, treatment, tau=0.1)[:, -1] <= 0.05).mean()
    fixed = achieved_power(2000, 1.0, 0.1)  # one test at the end: 0.885
    assert 0.5 < found < fixed - 0.1


@pytest.mark.parametrize("call, message", [
    (lambda: group_sequential_bounds([0.5, 0.4]), "information fractions must be increasing positive"),
    (lambda: group_sequential_bounds([0.5, 1.0], spending="haybittle"), "spending must be one of"),
    (lambda: crossing_probability([2.0], [0.5, 1.0]), r"need one positive bound per look \(2\)"),
    (lambda: peeking_error_rate(0), "looks must be a positive integer, got 0"),
    (lambda: always_valid_p(Moments.of(np.ones(3)), Moments.of(np.ones(3)), tau=0),
     "tau must be a finite number > 0, got 0"),
    (lambda: difference(Moments.of(np.ones(3)), Moments.of(np.ones(3)), alpha=1.0), "alpha must be in"),
])
def test_bad_input_is_refused(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()
