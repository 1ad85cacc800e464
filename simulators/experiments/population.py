"""Users arriving in an online experiment, and the metric they produce.

The model is the one behind per-user count metrics (sessions, queries, purchases): each user has
an activity rate drawn from a gamma distribution (some users are far more active than others), and
a count of events drawn from a Poisson law at that rate, so the metric is negative-binomial:
overdispersed, skewed, with a long right tail. Each day brings a Poisson number of users with a
weekly pattern (fewer at the weekend); a user's first visit during the experiment assigns them to
an arm by hash (:mod:`~simulators.experiments.assignment`) and their metric is counted on that day.
The same user's activity over a pre-period of ``pre_days`` before the experiment is the covariate
CUPED uses. In the treatment arm the rate is multiplied by ``1 + lift``, plus a novelty effect that
decays over the experiment's days (users try the new thing, then settle).

There is no queue and no interaction between users, so there is nothing for a discrete-event
engine to order: the simulator draws every user of thousands of experiments at once with numpy
and sums them into the per-day, per-arm sufficient statistics an experimentation platform keeps
(:class:`mlsys.experiments.Moments`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlsys.experiments import Moments

from .assignment import assign

_CHUNK_USERS = 2_000_000  # users drawn at once when simulating many experiments


@dataclass(frozen=True)
class Population:
    """Who arrives, when, and how active they are."""

    users_per_day: float = 2000.0
    weekly_traffic: tuple[float, ...] = (1.0, 1.04, 1.06, 1.03, 0.97, 0.78, 0.72)  # day 0 is a Monday
    mean: float = 3.0  # mean events per user
    shape: float = 1.5  # of the gamma distribution of users' rates: smaller is more unequal
    pre_days: int = 14  # length of the pre-period the covariate is measured over

    def __post_init__(self) -> None:
        for name in ("users_per_day", "mean", "shape"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Population: {name} must be a finite number > 0, got {value!r}")
        if len(self.weekly_traffic) != 7 or not all(w > 0 for w in self.weekly_traffic):
            raise ValueError(f"Population: weekly_traffic must be 7 positive factors, "
                             f"got {self.weekly_traffic}")
        if not isinstance(self.pre_days, int) or self.pre_days < 1:
            raise ValueError(f"Population: pre_days must be a positive integer, got {self.pre_days!r}")

    def traffic(self, days: int) -> np.ndarray:
        """Expected users arriving on each of ``days`` days."""
        return self.users_per_day * np.resize(np.asarray(self.weekly_traffic), days)

    def information_fractions(self, days: int) -> np.ndarray:
        """Expected share of all users that has arrived by the end of each day."""
        arrived = np.cumsum(self.traffic(days))
        return arrived / arrived[-1]

    @property
    def std(self) -> float:
        """Standard deviation of a control user's metric (negative binomial: ``m + m^2 / k``)."""
        return math.sqrt(self.mean + self.mean**2 / self.shape)

    @property
    def covariate_correlation(self) -> float:
        """corr(pre-period average, metric): both follow the user's rate."""
        rate_var = self.mean**2 / self.shape
        return rate_var / math.sqrt((rate_var + self.mean) * (rate_var + self.mean / self.pre_days))


@dataclass(frozen=True)
class Effect:
    """The treatment's relative change of the mean: ``lift`` for good, plus ``novelty`` on the first
    day decaying with an e-folding time of ``novelty_days``."""

    lift: float = 0.0
    novelty: float = 0.0
    novelty_days: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lift) and self.lift > -1 and math.isfinite(self.novelty)):
            raise ValueError(f"Effect: need a finite lift > -1 and a finite novelty, got {self.lift!r}, "
                             f"{self.novelty!r}")
        if not (math.isfinite(self.novelty_days) and self.novelty_days > 0):
            raise ValueError(f"Effect: novelty_days must be a finite number > 0, got {self.novelty_days!r}")

    def on_day(self, day: np.ndarray) -> np.ndarray:
        """The relative lift for users arriving on ``day`` (0 = the first day)."""
        return self.lift + self.novelty * np.exp(-np.asarray(day, dtype=np.float64) / self.novelty_days)


@dataclass(frozen=True)
class Users:
    """One experiment, user by user."""

    user_id: np.ndarray
    day: np.ndarray
    treated: np.ndarray
    pre: np.ndarray  # events per day over the pre-period
    metric: np.ndarray

    def arms(self, days: int | None = None) -> tuple[Moments, Moments]:
        """Control and treatment sums of the users who arrived before the end of day ``days - 1``
        (all of them by default), with the pre-period as the covariate."""
        seen = np.ones(len(self.day), bool) if days is None else self.day < days
        pick = lambda arm: Moments.of(self.metric[arm], self.pre[arm])
        return pick(seen & ~self.treated), pick(seen & self.treated)


@dataclass(frozen=True)
class DailyArms:
    """Per-day sums of each arm for many experiments: ``Moments`` shaped ``(experiments, days)``."""

    control: Moments
    treatment: Moments

    def cumulative(self) -> tuple[Moments, Moments]:
        """The sums up to each day: what a daily look at the experiment sees."""
        return self.control.cumulative(), self.treatment.cumulative()


def _draw(rng: np.random.Generator, population: Population, effect: Effect, days: int, experiments: int,
          salts: np.ndarray, treatment_share: float) -> tuple[np.ndarray, ...]:
    counts = rng.poisson(np.broadcast_to(population.traffic(days), (experiments, days)))
    experiment = np.repeat(np.arange(experiments), counts.sum(1))
    day = np.repeat(np.tile(np.arange(days), experiments), counts.ravel())
    user_id = rng.integers(0, 1 << 62, size=len(day))
    ends = np.cumsum(counts.sum(1))
    treated = np.concatenate([assign(user_id[end - n:end], int(salt), treatment_share)
                              for salt, n, end in zip(salts, counts.sum(1), ends)])
    rate = rng.gamma(population.shape, population.mean / population.shape, size=len(day))
    pre = rng.poisson(rate * population.pre_days) / population.pre_days
    metric = rng.poisson(rate * (1 + np.where(treated, effect.on_day(day), 0.0))).astype(np.float64)
    return experiment, day, user_id, treated, pre, metric


def _check(days: int, treatment_share: float) -> None:
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    if not 0 < treatment_share < 1:
        raise ValueError(f"treatment_share must be in (0, 1), got {treatment_share!r}")


def simulate_users(population: Population, effect: Effect, days: int, *, salt: int = 1,
                   treatment_share: float = 0.5, seed: int = 0) -> Users:
    """One experiment of ``days`` days, every user kept."""
    _check(days, treatment_share)
    _, day, user_id, treated, pre, metric = _draw(np.random.default_rng(seed), population, effect, days, 1,
                                                  np.array([salt]), treatment_share)
    return Users(user_id, day, treated, pre, metric)


def simulate_experiments(population: Population, effect: Effect, days: int, experiments: int, *,
                         treatment_share: float = 0.5, seed: int = 0) -> DailyArms:
    """``experiments`` independent experiments (each with its own salt and users), as daily sums."""
    _check(days, treatment_share)
    if not isinstance(experiments, int) or experiments < 1:
        raise ValueError(f"experiments must be a positive integer, got {experiments!r}")
    rng = np.random.default_rng(seed)
    per_experiment = population.traffic(days).sum()
    chunk = max(1, int(_CHUNK_USERS // per_experiment))
    sums = np.zeros((6, experiments, days, 2))  # n, y, y^2, x, x^2, xy per day and arm
    for first in range(0, experiments, chunk):
        count = min(chunk, experiments - first)
        salts = np.arange(first, first + count, dtype=np.int64) + (seed << 32)
        experiment, day, _, treated, pre, metric = _draw(rng, population, effect, days, count, salts,
                                                         treatment_share)
        cell = (experiment * days + day) * 2 + treated
        for row, values in enumerate((None, metric, metric * metric, pre, pre * pre, pre * metric)):
            sums[row, first:first + count] = np.bincount(cell, values, minlength=count * days * 2).reshape(
                count, days, 2)
    return DailyArms(Moments(*sums[..., 0]), Moments(*sums[..., 1]))
