"""Looking at an experiment more than once without inflating its error rate.

A fixed-horizon test at level ``alpha`` is wrong with probability ``alpha`` *once*, at the planned
sample size. Checking it every day and stopping at the first ``p < alpha`` gives the noise many
chances: under no effect, the z-statistic is a random walk that sooner or later crosses any fixed
line. Two remedies:

* **Group-sequential boundaries** (:func:`group_sequential_bounds`): plan the looks, and spend
  ``alpha`` over them with a Lan-DeMets spending function (O'Brien-Fleming-like: almost nothing
  early, nearly the whole ``alpha`` at the end; Pocock-like: evenly). The bounds come from the
  joint law of the z-statistics at the looks (a Brownian motion observed at the information
  fractions), integrated numerically look by look (Armitage, McPherson and Rowe, 1969; Jennison
  and Turnbull, 2000); :func:`crossing_probability` is that integral, which also gives the exact
  error rate of naive peeking.
* **Always-valid p-values** (:func:`always_valid_p`): the mixture sequential probability ratio
  test (mSPRT) of Johari, Koomen, Pekelis and Walsh, with a normal mixing distribution
  ``N(0, tau^2)`` over the effect. Its p-value may be watched after every user and the test
  stopped at any time: ``P(p_n <= alpha for some n) <= alpha`` under no effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from .moments import Moments

_GRID = 301  # points across the continuation region (odd, for Simpson's rule)
SPENDING = ("obrien-fleming", "pocock")
_NEVER = 12.0  # a z bound no path reaches (probability ~ 1e-33)


def _fractions(fractions: Sequence[float]) -> np.ndarray:
    t = np.asarray(fractions, dtype=np.float64)
    if t.ndim != 1 or not len(t) or not np.all(np.isfinite(t)) or t[0] <= 0 or np.any(np.diff(t) <= 0):
        raise ValueError(f"information fractions must be increasing positive numbers, got {list(t)}")
    return t


def spent_alpha(t: np.ndarray, alpha: float, spending: str) -> np.ndarray:
    """The two-sided error allowed up to information fraction ``t``: Lan and DeMets's spending
    functions applied to each side with ``alpha / 2`` (the convention of gsDesign and ldbounds)."""
    t = np.minimum(t, 1)
    if spending == "obrien-fleming":
        return 2 * (2 * stats.norm.sf(stats.norm.isf(alpha / 4) / np.sqrt(t)))
    if spending == "pocock":
        return alpha * np.log1p((math.e - 1) * t)
    raise ValueError(f"spending must be one of {SPENDING}, got {spending!r}")


def _simpson(edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Points across [-edge, edge] and their Simpson's-rule weights."""
    grid = np.linspace(-edge, edge, _GRID)
    weights = np.full(_GRID, 2.0)
    weights[1::2] = 4.0
    weights[[0, -1]] = 1.0
    return grid, weights * (grid[1] - grid[0]) / 3


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


class _Continuation:
    """The sub-density of the score S = Z sqrt(t) over the paths that have not crossed yet,
    tabulated on a grid across the continuation region (-edge, edge)."""

    def __init__(self, t: float, edge: float, density: np.ndarray | None = None) -> None:
        self.t = t
        self.grid, weights = _simpson(edge)
        if density is None:
            density = _normal_pdf(self.grid / math.sqrt(t)) / math.sqrt(t)
        self.mass = weights * density  # probability carried by each grid point

    def crossing(self, t: float, edge: float) -> float:
        """Probability of surviving so far and then |S(t)| >= edge."""
        sigma = math.sqrt(t - self.t)
        tails = stats.norm.sf((edge - self.grid) / sigma) + stats.norm.cdf((-edge - self.grid) / sigma)
        return float(self.mass @ tails)

    def step(self, t: float, edge: float) -> _Continuation:
        """The sub-density at the next look, over the paths that stay inside ``edge``."""
        sigma = math.sqrt(t - self.t)
        grid, _ = _simpson(edge)
        density = _normal_pdf((grid[:, None] - self.grid[None, :]) / sigma) @ self.mass / sigma
        return _Continuation(t, edge, density)


def crossing_probability(bounds: Sequence[float], fractions: Sequence[float]) -> float:
    """Under no effect, the probability that ``|Z_k| >= bounds[k]`` at some look ``k`` when the
    looks fall at information ``fractions`` (increasing; any scale)."""
    t = _fractions(fractions)
    c = np.asarray(bounds, dtype=np.float64)
    if c.shape != t.shape or np.any(c <= 0):
        raise ValueError(f"need one positive bound per look ({len(t)}), got {list(c)}")
    total = 2 * stats.norm.sf(c[0])
    state = _Continuation(t[0], c[0] * math.sqrt(t[0]))
    for k in range(1, len(t)):
        edge = c[k] * math.sqrt(t[k])
        total += state.crossing(t[k], edge)
        state = state.step(t[k], edge)
    return float(total)


def peeking_error_rate(looks: int, alpha: float = 0.05) -> float:
    """The false-positive rate of testing at level ``alpha`` at ``looks`` equally spaced looks and
    stopping at the first significant one (0.05 at one look, 0.142 at five, 0.193 at ten)."""
    if not isinstance(looks, int) or looks < 1:
        raise ValueError(f"looks must be a positive integer, got {looks!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return crossing_probability([stats.norm.isf(alpha / 2)] * looks, np.arange(1, looks + 1))


def group_sequential_bounds(fractions: Sequence[float], alpha: float = 0.05,
                            spending: str = "obrien-fleming") -> np.ndarray:
    """Two-sided z bounds, one per look at information ``fractions`` of the planned total (the last
    usually 1), that spend ``alpha`` in all: reject at the first look with ``|Z_k| >= bound``."""
    t = _fractions(fractions)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    spend = np.diff(spent_alpha(t, alpha, spending), prepend=0.0)
    bounds = np.empty(len(t))
    bounds[0] = stats.norm.isf(spend[0] / 2) if spend[0] > 0 else _NEVER
    state = _Continuation(t[0], bounds[0] * math.sqrt(t[0]))
    for k in range(1, len(t)):
        root = math.sqrt(t[k])
        excess = lambda c, state=state, tk=t[k], root=root, target=spend[k]: (
            state.crossing(tk, c * root) - target)
        if spend[k] <= 0 or excess(_NEVER) >= 0:
            bounds[k] = _NEVER  # nothing left to spend at this look
        else:
            bounds[k] = optimize.brentq(excess, 1e-6, _NEVER, xtol=1e-10, rtol=1e-12)
        state = state.step(t[k], bounds[k] * root)
    return bounds


def _log_mixture_ratio(effect: np.ndarray, variance: np.ndarray, tau: float) -> np.ndarray:
    return 0.5 * np.log(variance / (variance + tau**2)) + tau**2 * effect**2 / (
        2 * variance * (variance + tau**2))


def always_valid_p(control: Moments, treatment: Moments, tau: float) -> np.ndarray:
    """mSPRT p-values at each look (the last axis), from cumulative arm moments.

    ``tau`` is the standard deviation of the normal mixture over the difference in means, in the
    metric's units: about the size of effect the test should find fastest. Each p-value is
    ``min(1, 1 / max_{m <= n} Lambda_m)`` with the mixture likelihood ratio
    ``Lambda = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2)))`` of the difference ``d``
    with variance ``V`` (estimated from the arms, as platforms do).
    """
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    variance = control.var / control.n + treatment.var / treatment.n
    log_ratio = _log_mixture_ratio(treatment.mean - control.mean, variance, tau)
    return np.exp(-np.maximum(np.maximum.accumulate(log_ratio, axis=-1), 0.0))


def always_valid_interval(control: Moments, treatment: Moments, tau: float,
                          alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """The mSPRT confidence sequence for the difference at each look: every effect it has not
    rejected so far (a running intersection, so it only narrows)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    variance = control.var / control.n + treatment.var / treatment.n
    half = np.sqrt(2 * variance * (variance + tau**2) / tau**2
                   * (math.log(1 / alpha) + 0.5 * np.log((variance + tau**2) / variance)))
    effect = treatment.mean - control.mean
    return (np.maximum.accumulate(effect - half, axis=-1), np.minimum.accumulate(effect + half, axis=-1))
