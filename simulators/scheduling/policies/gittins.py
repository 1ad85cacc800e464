"""Gittins-index scheduling (Tiresias, Gu et al. NSDI'19, section 4.2), discretized.

Without knowing a job's duration, but knowing the distribution ``S`` of jobs' service (GPU-seconds),
the Gittins index of a job that has attained ``a`` is::

    G(a) = max over D of  P(S - a <= D | S > a) / E[min(S - a, D) | S > a]

the best ratio of "chance to finish within the next D" to "service that costs". Running the job
with the highest index minimizes mean completion time among policies that only see attained
service (Gittins 1989). As in Tiresias, attained service is 2D (GPUs x time) and is read at
``bins`` geometric steps, so a running job's priority changes only at bin edges. The distribution
is the trace's own job sizes unless ``samples`` (e.g. Tiresias's ``yarn-gput*.csv``) are given.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from .base import EPS, Policy


def gittins_index(samples: np.ndarray, attained: float) -> float:
    """``G(attained)`` for the empirical service distribution ``samples`` (0 if none exceed it)."""
    s = np.sort(np.asarray(samples, dtype=float))
    rest = s[s > attained] - attained
    m = len(rest)
    if m == 0:
        return 0.0
    done = np.arange(1, m + 1)                      # jobs finished within D = rest[k]
    spent = np.cumsum(rest) + rest * (m - done)     # sum of min(S - a, D) over survivors
    return float(np.max(done / spent))


class Gittins(Policy):
    name = "gittins"
    preemptive = True

    def __init__(self, samples: Sequence[float] | None = None, bins: int = 16,
                 skip_blocked: bool = True) -> None:
        super().__init__(skip_blocked)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        if samples is not None:
            samples = np.asarray(samples, dtype=float)
            if samples.ndim != 1 or len(samples) == 0 or not (samples > 0).all():
                raise ValueError("samples must be a non-empty 1-D sequence of service times > 0")
        self.samples, self.bins = samples, bins
        self.edges: list[float] = []
        self.index: list[float] = []

    def attach(self, sim) -> None:
        samples = self.samples
        if samples is None:
            samples = np.array([job.gpu_seconds for job in sim.trace.jobs])
        lo, hi = max(samples.min(), 1.0), samples.max()
        edges = np.geomspace(lo, max(hi, lo * 2), self.bins - 1)
        self.edges = [0.0, *edges.tolist()]
        self.index = [gittins_index(samples, a) for a in self.edges]

    def _bin(self, state, now) -> int:
        return bisect.bisect_right(self.edges, state.attained_at(now) * (1 + EPS) + EPS) - 1

    def key(self, state, now):
        return (-self.index[self._bin(state, now)], state.job.arrival, state.index)

    def next_key_change(self, state, now):
        b = self._bin(state, now) + 1
        if b >= len(self.edges):
            return None
        return now + (self.edges[b] - state.attained_at(now)) / state.gpus

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bins={self.bins})"
