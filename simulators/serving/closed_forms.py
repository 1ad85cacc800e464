"""Queueing theory's closed forms for the waiting time in queue (before service starts).

Arrivals are Poisson at rate ``lam``; each of ``c`` servers serves at rate ``mu`` (mean service
``1/mu``); utilization ``rho = lam / (c * mu)`` must be below 1 for a steady state to exist.

* M/M/1: ``Wq = rho / (mu - lam)``; the time in system is exponential with rate ``mu - lam``.
* M/D/1 (constant service): ``Wq = rho / (2 mu (1 - rho))``, half of M/M/1's.
* M/G/1 (Pollaczek-Khinchine): ``Wq = lam E[S^2] / (2 (1 - rho))``.
* M/M/c: ``Wq = C(c, a) / (c mu - lam)`` with ``a = lam / mu`` and Erlang's C formula
  ``C(c, a)``, the probability that an arrival has to wait (Erlang 1917; Kleinrock, *Queueing
  Systems* vol. 1, 1975, sections 3.2-3.5 and 5.7).
"""

from __future__ import annotations

import math

__all__ = ["mm1_wait", "md1_wait", "mg1_wait", "mmc_wait", "erlang_c", "mm1_sojourn_quantile"]


def _check(lam: float, mu: float, c: int = 1) -> float:
    for name, value in (("arrival rate", lam), ("service rate", mu)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number per second, got {value!r}")
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"servers must be a positive integer, got {c!r}")
    rho = lam / (c * mu)
    if rho >= 1:
        raise ValueError(f"utilization lam/(c mu) = {rho:.3g} >= 1: the queue grows without bound")
    return rho


def mm1_wait(lam: float, mu: float) -> float:
    """Mean wait in queue of M/M/1 (seconds)."""
    rho = _check(lam, mu)
    return rho / (mu - lam)


def md1_wait(lam: float, mu: float) -> float:
    """Mean wait in queue of M/D/1 (seconds)."""
    rho = _check(lam, mu)
    return rho / (2 * mu * (1 - rho))


def mg1_wait(lam: float, mean_service: float, second_moment: float) -> float:
    """Mean wait in queue of M/G/1 from the service time's first two moments (Pollaczek-Khinchine)."""
    rho = _check(lam, 1.0 / mean_service)
    if second_moment < mean_service ** 2:
        raise ValueError(f"E[S^2] = {second_moment!r} is below E[S]^2 = {mean_service ** 2!r}")
    return lam * second_moment / (2 * (1 - rho))


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``a = lam/mu`` (< c)."""
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"servers must be a positive integer, got {c!r}")
    if not 0 < a < c:
        raise ValueError(f"offered load a = {a!r} must be in (0, c={c})")
    term, total = 1.0, 1.0  # a^k / k!, summed for k < c, computed stably
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c  # a^c / c!
    top = last * c / (c - a)
    return top / (total + top)


def mmc_wait(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue of M/M/c (seconds)."""
    _check(lam, mu, c)
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mm1_sojourn_quantile(lam: float, mu: float, q: float) -> float:
    """The ``q`` quantile (0 < q < 1) of M/M/1's time in system: exponential with rate mu - lam."""
    _check(lam, mu)
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q!r}")
    return -math.log(1 - q) / (mu - lam)
