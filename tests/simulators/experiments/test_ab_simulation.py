"""Simulated A/B tests: the traffic split, the population against its closed forms, and the
course's statistical claims over many experiments (fixed seeds; tolerances of 3-4 standard errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlsys.experiments import (
    always_valid_p,
    crossing_probability,
    cuped,
    difference,
    group_sequential_bounds,
    minimum_detectable_effect,
)
from simulators.experiments import (
    BUCKETS,
    Effect,
    Population,
    assign,
    bucket,
    simulate_experiments,
    simulate_users,
)

DAYS = 14
POPULATION = Population(users_per_day=100)


def se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def test_hash_assignment_is_sticky_balanced_and_independent_across_experiments(rng) -> None:
    users = rng.integers(0, 1 << 62, size=200_000)
    first = assign(users, salt=1)
    assert np.array_equal(first, assign(users.copy(), salt=1))  # same user, same arm, no state
    assert abs(first.mean() - 0.5) < 4 * se(0.5, len(users))
    assert abs(assign(users, 1, treatment_share=0.1).mean() - 0.1) < 4 * se(0.1, len(users))
    second = assign(users, salt=2)
    both = (first & second).mean()  # independent splits: a quarter of users in both treatments
    assert abs(both - 0.25) < 4 * se(0.25, len(users))
    counts = np.bincount(bucket(users, 3), minlength=BUCKETS)
    assert counts.min() > 0 and counts.std() < 1.2 * math.sqrt(len(users) / BUCKETS)  # ~ Poisson spread
    with pytest.raises(ValueError, match="user ids must be integers"):
        bucket(np.array([1.5]), 1)


def test_the_population_matches_its_closed_forms() -> None:
    users = simulate_users(Population(users_per_day=4000), Effect(), days=7, seed=3)
    control = ~users.treated
    assert users.metric[control].mean() == pytest.approx(3.0, rel=0.02)
    assert users.metric[control].std() == pytest.approx(Population().std, rel=0.03)
    rho = np.corrcoef(users.pre, users.metric)[0, 1]
    assert rho == pytest.approx(Population().covariate_correlation, abs=0.02)
    per_day = np.bincount(users.day, minlength=7)
    expected = Population(users_per_day=4000).traffic(7)
    assert np.all(np.abs(per_day - expected) < 4 * np.sqrt(expected))  # Poisson arrivals, weekly pattern


@pytest.fixture(scope="module")
def aa():
    """1,000 A/A experiments of two weeks, looked at daily."""
    return simulate_experiments(POPULATION, Effect(), DAYS, 1000, seed=11).cumulative()


def test_peeking_inflates_false_positives_as_the_closed_form_says(aa) -> None:
    control, treatment = aa
    p = difference(control, treatment).p_value
    peeking, once = (p < 0.05).any(axis=1).mean(), (p[:, -1] < 0.05).mean()
    exact = crossing_probability([1.959964] * DAYS, POPULATION.information_fractions(DAYS))
    assert exact == pytest.approx(0.216, abs=0.002)
    assert abs(peeking - exact) < 4 * se(exact, 1000) and peeking > 0.15  # well above the nominal 5%
    assert abs(once - 0.05) < 4 * se(0.05, 1000)


def test_sequential_tests_keep_the_error_rate(aa) -> None:
    control, treatment = aa
    limit = 0.05 + 3 * se(0.05, 1000)
    msprt = (always_valid_p(control, treatment, tau=0.1 * POPULATION.std) <= 0.05).any(axis=1).mean()
    bounds = group_sequential_bounds(POPULATION.information_fractions(DAYS))
    spent = (np.abs(difference(control, treatment).z) >= bounds).any(axis=1).mean()
    assert msprt <= limit and spent <= limit
    assert abs(spent - 0.05) < 4 * se(0.05, 1000)  # the boundaries spend the whole 5%, no more


def test_cuped_narrows_the_interval_and_keeps_its_coverage(aa) -> None:
    control, treatment = aa
    plain, adjusted = difference(control, treatment), cuped(control, treatment)
    ratio = np.mean(adjusted.se[:, -1] / plain.se[:, -1])
    assert ratio == pytest.approx(math.sqrt(1 - POPULATION.covariate_correlation**2), rel=0.02)
    covered = ((adjusted.low[:, -1] <= 0) & (adjusted.high[:, -1] >= 0)).mean()
    assert abs(covered - 0.95) < 4 * se(0.05, 1000)


def test_power_analysis_predicts_the_detection_rate() -> None:
    per_arm = POPULATION.traffic(DAYS).sum() / 2
    lift = minimum_detectable_effect(per_arm, POPULATION.std) / POPULATION.mean  # power 0.8 by design
    control, treatment = simulate_experiments(POPULATION, Effect(lift), DAYS, 500, seed=12).cumulative()
    found = (difference(control, treatment).p_value[:, -1] < 0.05).mean()
    assert abs(found - 0.8) < 4 * se(0.8, 500)
    assert (cuped(control, treatment).p_value[:, -1] < 0.05).mean() > found + 0.1  # more power, same users


def test_a_novelty_effect_inflates_early_estimates() -> None:
    effect = Effect(lift=0.02, novelty=0.3, novelty_days=2.0)
    control, treatment = simulate_experiments(POPULATION, effect, DAYS, 300, seed=13).cumulative()
    relative = difference(control, treatment).effect / control.mean
    first_days, two_weeks = relative[:, 2].mean(), relative[:, -1].mean()
    assert first_days > two_weeks + 0.05  # three days in, the novelty still dominates
    truth = np.average(effect.on_day(np.arange(DAYS)), weights=POPULATION.traffic(DAYS))
    assert two_weeks == pytest.approx(truth, abs=4 * relative[:, -1].std() / math.sqrt(300))


@pytest.mark.parametrize("call, message", [
    (lambda: Population(users_per_day=0), "users_per_day must be a finite number > 0, got 0"),
    (lambda: Population(weekly_traffic=(1.0,)), "weekly_traffic must be 7 positive factors"),
    (lambda: Effect(lift=-1.0), "need a finite lift > -1"),
    (lambda: simulate_experiments(POPULATION, Effect(), 0, 1), "days must be a positive integer, got 0"),
    (lambda: simulate_experiments(POPULATION, Effect(), 3, 1, treatment_share=1.0),
     "treatment_share must be in"),
    (lambda: simulate_experiments(POPULATION, Effect(), 3, 0), "experiments must be a positive integer"),
])
def test_bad_input_is_refused(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()
