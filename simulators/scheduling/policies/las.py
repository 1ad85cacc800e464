"""Tiresias's discretized two-dimensional least-attained-service (2D-LAS), Gu et al. NSDI'19.

No duration knowledge: a job's attained service is GPUs x time held (both dimensions of a gang
job). Jobs sit in ``K`` priority queues split at ``thresholds`` of attained GPU-seconds; a job is
demoted when it crosses a threshold, and inside a queue jobs run first come, first served.
The default thresholds (1, 10 and 100 GPU-hours) are a choice, not Tiresias's: with one threshold
at one GPU-hour most Philly jobs land in the FIFO bottom queue and 2D-LAS degrades towards FIFO.
"""

from __future__ import annotations

import bisect

from .base import EPS, Policy


class LAS(Policy):
    name = "las"
    preemptive = True

    def __init__(self, thresholds: tuple[float, ...] = (3600.0, 36000.0, 360000.0),
                 skip_blocked: bool = True) -> None:
        super().__init__(skip_blocked)
        if list(thresholds) != sorted(thresholds) or any(t <= 0 for t in thresholds):
            raise ValueError(f"thresholds must be positive and increasing, got {thresholds}")
        self.thresholds = tuple(float(t) for t in thresholds)

    def queue(self, attained: float) -> int:
        """Index of the priority queue for ``attained`` GPU-seconds (0 is the highest)."""
        return bisect.bisect_right(self.thresholds, attained * (1 + EPS) + EPS)

    def key(self, state, now):
        return (self.queue(state.attained_at(now)), state.job.arrival, state.index)

    def next_key_change(self, state, now):
        level = self.queue(state.attained_at(now))
        if level == len(self.thresholds):
            return None
        return now + (self.thresholds[level] - state.attained_at(now)) / state.gpus

    def __repr__(self) -> str:
        return f"{type(self).__name__}(thresholds={self.thresholds})"
