"""Gittins-index scheduling (Tiresias, Gu et al. NSDI'19, section 4.2), discretized.

Without knowing a job's duration, but knowing the distribution ``S`` of jobs' service (GPU-seconds),
the Gittins index of a job that has attained ``a`` is::

    G(a) = max over D of  P(S - a <= D | S > a) / E[min(S - a, D) | S > a]

the best ratio of "chance to finish within the next D" to "service that costs". Running the job
with the highest index minimizes mean completion time among policies that only see attained
service (Gittins 1989). With a fixed service quantum ``delta`` the maximum is dropped and ``D`` is
``delta`` (Tiresias's simulator uses 3,250 GPU-seconds, its first queue threshold).

As in Tiresias, attained service is 2D (GPUs x time) and is read at a table of ``bins``
geometric steps (or at every distinct sample with ``bins=None``), so a running job's priority
changes only at table edges. The distribution is the trace's own job sizes unless ``samples``
(e.g. Tiresias's ``yarn-gput*.csv``) are given; ``index_table=(edges, values)`` gives the table
directly. Queues work as in :class:`~.las.LAS` (``thresholds``, ``promote_knob``; none by
default); inside a queue the highest index runs first, ties in arrival order.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from .base import EPS
from .las import LAS


def gittins_index(samples: np.ndarray, attained: float, delta: float | None = None) -> float:
    """``G(attained)`` for the empirical service distribution ``samples`` (0 if none exceed it);
    with ``delta``, the index for that fixed service quantum instead of the best one."""
    s = np.sort(np.asarray(samples, dtype=float))
    rest = s[s > attained] - attained
    m = len(rest)
    if m == 0:
        return 0.0
    if delta is not None:
        return float(np.mean(rest <= delta) / np.mean(np.minimum(rest, delta)))
    done = np.arange(1, m + 1)                      # jobs finished within D = rest[k]
    spent = np.cumsum(rest) + rest * (m - done)     # sum of min(S - a, D) over survivors
    return float(np.max(done / spent))


class Gittins(LAS):
    name = "gittins"

    def __init__(self, samples: Sequence[float] | None = None, bins: int | None = 16, *,
                 delta: float | None = None,
                 index_table: tuple[Sequence[float], Sequence[float]] | None = None,
                 thresholds: Sequence[float] = (), promote_knob: float | None = None,
                 skip_blocked: bool = True) -> None:
        super().__init__(thresholds, promote_knob, skip_blocked)
        if bins is not None and (not isinstance(bins, int) or bins < 2):
            raise ValueError(f"bins must be an integer >= 2 (or None: every sample), got {bins!r}")
        if samples is not None:
            samples = np.asarray(samples, dtype=float)
            if samples.ndim != 1 or len(samples) == 0 or not np.isfinite(samples).all() \
                    or not (samples > 0).all():
                raise ValueError("samples must be a non-empty 1-D sequence of finite service "
                                 "times > 0 (GPU-seconds)")
        if delta is not None and not (np.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a finite service quantum > 0 GPU-seconds, got {delta}")
        self.samples, self.bins, self.delta = samples, bins, delta
        self.edges: list[float] = []
        self.index: list[float] = []
        self.given = index_table is not None
        if index_table is not None:
            if samples is not None:
                raise ValueError("give samples or an index_table, not both")
            edges, values = (list(map(float, column)) for column in index_table)
            if not edges or edges[0] != 0.0 or edges != sorted(set(edges)) or len(values) != len(edges):
                raise ValueError("index_table must be (edges, values): increasing edges from 0 "
                                 "and one index value per edge")
            self.edges, self.index = edges, values

    def attach(self, sim) -> None:
        super().attach(sim)
        if self.given:
            return
        samples = self.samples
        if samples is None:
            samples = np.array([job.gpu_seconds for job in sim.trace.jobs])
        if self.bins is None:
            edges = np.unique(samples)[:-1]
        else:
            lo, hi = max(samples.min(), 1.0), samples.max()
            edges = np.geomspace(lo, max(hi, lo * 2), self.bins - 1)
        self.edges = [0.0, *edges.tolist()]
        self.index = [gittins_index(samples, a, self.delta) for a in self.edges]

    def _bin(self, attained: float) -> int:
        return bisect.bisect_right(self.edges, attained * (1 + EPS) + EPS) - 1

    def key(self, state, now):
        i = state.index
        attained = state.attained_at(now) - self.base[i]
        return (self.level[i], -self.index[self._bin(attained)], state.job.arrival, i)

    def next_key_change(self, state, now):
        changes = [super().next_key_change(state, now)]
        b = self._bin(state.attained_at(now) - self.base[state.index]) + 1
        if b < len(self.edges):
            attained = state.attained_at(now) - self.base[state.index]
            changes.append(now + (self.edges[b] - attained) / state.gpus)
        return min((t for t in changes if t is not None), default=None)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(bins={self.bins}, delta={self.delta}, "
                f"thresholds={self.thresholds}, promote_knob={self.promote_knob})")
