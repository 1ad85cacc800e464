"""Power analysis for a two-arm test of a difference in means (normal approximation).

With ``n`` users per arm and a metric of standard deviation ``sigma``, the difference of the two
means has standard error ``sigma * sqrt(2 / n)``. A two-sided test at level ``alpha`` detects a true
difference ``delta`` with probability (its power)

    Phi(delta / se - z_{1 - alpha/2}) + Phi(-delta / se - z_{1 - alpha/2}),

and the ``n`` that gives power ``1 - beta`` is ``2 sigma^2 (z_{1-alpha/2} + z_{1-beta})^2 / delta^2``
(with ``alpha = 0.05``, ``1 - beta = 0.8``: ``n ~ 15.7 sigma^2 / delta^2``, the usual rule of 16).
"""

from __future__ import annotations

import math

from scipy import stats


def _check(alpha: float, power: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if power is not None and not alpha / 2 < power < 1:
        raise ValueError(f"power must be in (alpha/2, 1), got {power!r}")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def sample_size(std: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per arm to detect a difference ``mde`` with probability ``power`` (two-sided)."""
    _positive("std", std)
    _positive("mde", mde)
    _check(alpha, power)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return math.ceil(2 * (std * z / mde) ** 2)


def achieved_power(n: float, std: float, effect: float, alpha: float = 0.05) -> float:
    """The probability that a two-sided test with ``n`` users per arm finds a true ``effect``."""
    _positive("n", n)
    _positive("std", std)
    _check(alpha)
    shift = abs(effect) / (std * math.sqrt(2 / n))
    critical = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.cdf(shift - critical) + stats.norm.cdf(-shift - critical))


def minimum_detectable_effect(n: float, std: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest difference found with probability ``power`` by ``n`` users per arm."""
    _positive("n", n)
    _positive("std", std)
    _check(alpha, power)
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * std * math.sqrt(2 / n))
