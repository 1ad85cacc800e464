"""The alpha-beta-gamma cost model of a collective, read off its schedule.

A message of ``n`` bytes costs ``alpha + n * beta`` (latency plus inverse bandwidth) and reducing
``n`` bytes costs ``n * gamma`` (Hockney 1994; Thakur, Rabenseifner & Gropp 2005). A schedule runs
round by round, so its time is the sum over rounds of the busiest rank's cost in that round:

    T = alpha * rounds + beta * (bytes on the critical path) + gamma * (bytes reduced on it)

For a ring all-reduce over p ranks this gives the textbook ``2(p-1) alpha + 2 (p-1)/p n beta +
(p-1)/p n gamma``; :func:`fit` finds alpha, beta and gamma from measured times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .schedules import Schedule


@dataclass(frozen=True)
class Terms:
    """How many alphas, betas and gammas one run of a schedule costs."""

    rounds: int
    bytes: float  # the busiest rank's bytes sent or received, summed over rounds
    reduced: float  # the busiest rank's bytes reduced, summed over rounds


def terms(schedule: Schedule, itemsize: int) -> Terms:
    """The cost terms of ``schedule`` for elements of ``itemsize`` bytes."""
    moved = reduced = 0.0
    p = schedule.world_size
    for steps in schedule.rounds():
        sent, received, folded = np.zeros(p), np.zeros(p), np.zeros(p)
        for s in steps:
            n = schedule.chunk_size(s.chunk) * itemsize
            sent[s.src] += n
            received[s.dst] += n
            if s.op == "reduce":
                folded[s.dst] += n
        moved += float(np.maximum(sent, received).max())
        reduced += float(folded.max())
    return Terms(schedule.num_rounds, moved, reduced)


@dataclass(frozen=True)
class CostModel:
    """Seconds per message (alpha), per byte moved (beta) and per byte reduced (gamma)."""

    alpha: float
    beta: float
    gamma: float

    def predict(self, t: Terms) -> float:
        return self.alpha * t.rounds + self.beta * t.bytes + self.gamma * t.reduced

    def describe(self) -> str:
        bandwidth = 1e-9 / self.beta if self.beta else float("inf")
        reduce_rate = 1e-9 / self.gamma if self.gamma else float("inf")
        return (f"alpha = {self.alpha * 1e6:.2f} us, beta = 1/({bandwidth:.2f} GB/s), "
                f"gamma = 1/({reduce_rate:.2f} GB/s)")


def fit(samples: Sequence[tuple[Terms, float]]) -> CostModel:
    """Non-negative least squares on relative error over ``(terms, measured seconds)`` pairs.

    Relative error weights a 4 KB message as much as a 64 MB one, so alpha is not drowned out.
    """
    from scipy.optimize import nnls

    if len(samples) < 3:
        raise ValueError(f"fit: need at least 3 measurements for 3 parameters, got {len(samples)}")
    times = np.array([t for _, t in samples], dtype=float)
    if np.any(times <= 0):
        raise ValueError("fit: measured times must be positive seconds")
    a = np.array([[t.rounds, t.bytes, t.reduced] for t, _ in samples], dtype=float)
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(a / scale / times[:, None], np.ones(len(times)))
    alpha, beta, gamma = coef / scale
    return CostModel(float(alpha), float(beta), float(gamma))
