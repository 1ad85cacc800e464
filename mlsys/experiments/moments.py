"""Sufficient statistics of an experiment arm, and the fixed-horizon tests computed from them.

An experimentation platform does not keep every user's values in memory; it aggregates them (in
SQL, per day and arm) into counts and sums, from which every estimate below follows exactly
(Deng et al., 2013). :class:`Moments` holds those sums as arrays, so one call analyses a whole
batch of experiments and looks at once: shape ``(..., looks)`` is the usual layout.

Each user contributes a metric ``y`` and, optionally, a covariate ``x`` measured before the
experiment began (the same metric in a pre-period). :func:`difference` is the two-sample z-test
(Welch's standard error, normal approximation: arms hold hundreds of users or more);
:func:`cuped` is the same test on ``y - theta (x - mean x)``, which removes the part of the
variance that the pre-period explains.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Moments:
    """Counts and sums of one arm: ``n``, sums of ``y``, ``y^2``, ``x``, ``x^2`` and ``x y``."""

    n: np.ndarray
    y: np.ndarray
    y2: np.ndarray
    x: np.ndarray | float = 0.0
    x2: np.ndarray | float = 0.0
    xy: np.ndarray | float = 0.0

    @classmethod
    def of(cls, y: np.ndarray, x: np.ndarray | None = None, axis: int = -1) -> Moments:
        """The sums of per-user values along ``axis``."""
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 0:
            raise ValueError("Moments.of: y must be an array of per-user values, got a scalar")
        if x is None:
            return cls(np.asarray(float(y.shape[axis])), y.sum(axis), (y * y).sum(axis))
        x = np.asarray(x, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"Moments.of: x has shape {x.shape}, y has {y.shape}")
        return cls(np.asarray(float(y.shape[axis])), y.sum(axis), (y * y).sum(axis), x.sum(axis),
                   (x * x).sum(axis), (x * y).sum(axis))

    def cumulative(self, axis: int = -1) -> Moments:
        """Running totals along ``axis``: daily sums become the sums up to each day."""
        shape = np.broadcast_shapes(*(np.shape(getattr(self, f.name)) for f in fields(self)))
        return Moments(*(np.cumsum(np.broadcast_to(getattr(self, f.name), shape), axis=axis)
                         for f in fields(self)))

    def __add__(self, other: Moments) -> Moments:
        return Moments(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def mean(self) -> np.ndarray:
        return self.y / self.n

    @property
    def var(self) -> np.ndarray:
        """Sample variance of ``y`` (divisor ``n - 1``)."""
        return (self.y2 - self.y * self.y / self.n) / (self.n - 1)

    @property
    def x_mean(self) -> np.ndarray:
        return self.x / self.n

    def covariances(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``cov(x, y)`` and ``var(x)``."""
        return ((self.xy - self.x * self.y / self.n) / (self.n - 1),
                (self.x2 - self.x * self.x / self.n) / (self.n - 1))


@dataclass(frozen=True)
class Estimate:
    """Treatment minus control: the effect, its standard error, z, two-sided p and interval."""

    effect: np.ndarray
    se: np.ndarray
    z: np.ndarray
    p_value: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _estimate(effect: np.ndarray, se: np.ndarray, alpha: float) -> Estimate:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    z = effect / se
    half = stats.norm.ppf(1 - alpha / 2) * se
    return Estimate(effect, se, z, 2 * stats.norm.sf(np.abs(z)), effect - half, effect + half)


def difference(control: Moments, treatment: Moments, alpha: float = 0.05) -> Estimate:
    """The difference in means with Welch's standard error, its z-test and ``1 - alpha`` interval."""
    se = np.sqrt(control.var / control.n + treatment.var / treatment.n)
    return _estimate(treatment.mean - control.mean, se, alpha)


def cuped_theta(control: Moments, treatment: Moments) -> np.ndarray:
    """``theta = cov(x, y) / var(x)`` over both arms together (so it does not depend on the
    treatment, and the adjusted difference stays unbiased)."""
    both = control + treatment
    cov, var_x = both.covariances()
    return cov / var_x


def cuped(control: Moments, treatment: Moments, alpha: float = 0.05) -> Estimate:
    """The difference in means of ``y - theta (x - mean x)``: the pre-period covariate ``x`` removes
    a fraction ``corr(x, y)^2`` of the variance, so the interval narrows by ``sqrt(1 - rho^2)``."""
    theta = cuped_theta(control, treatment)
    effect = (treatment.mean - control.mean) - theta * (treatment.x_mean - control.x_mean)

    def adjusted_var(arm: Moments) -> np.ndarray:
        cov, var_x = arm.covariances()
        return arm.var - 2 * theta * cov + theta**2 * var_x

    se = np.sqrt(adjusted_var(control) / control.n + adjusted_var(treatment) / treatment.n)
    return _estimate(effect, se, alpha)
