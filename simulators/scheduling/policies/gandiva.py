"""Gandiva-style time slicing (Xiao et al., OSDI'18): round-robin quanta over waiting gangs.

When jobs outnumber GPUs, Gandiva suspends a job at an iteration boundary and resumes another,
so every job makes progress. Here a job's priority is the number of ``quantum``-second slices it
has run; at the end of each slice a running job falls behind every waiting job that has had fewer
slices and is preempted for it (paying the simulation's ``restart_cost`` on resume). Gandiva's
other mechanisms — packing two jobs on one GPU and migration — are not modelled: a GPU here holds
at most one job.
"""

from __future__ import annotations

import math

from .base import EPS, Policy, positive_seconds


class TimeSlicing(Policy):
    name = "gandiva"
    preemptive = True

    def __init__(self, quantum: float = 600.0, skip_blocked: bool = True) -> None:
        super().__init__(skip_blocked)
        self.quantum = positive_seconds("quantum", quantum)

    def slices(self, state, now) -> int:
        """Whole quanta ``state`` has held GPUs for by ``now``."""
        executed = state.executed + (now - state.started if state.running else 0.0)
        return math.floor(executed * (1 + EPS) / self.quantum + EPS)

    def key(self, state, now):
        return (self.slices(state, now), state.job.arrival, state.index)

    def next_key_change(self, state, now):
        return state.started + (self.slices(state, now) + 1) * self.quantum - state.executed

    def __repr__(self) -> str:
        return f"{type(self).__name__}(quantum={self.quantum})"
