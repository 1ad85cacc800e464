"""Gandiva-style time slicing (Xiao et al., OSDI'18): round-robin quanta over waiting gangs.

When jobs outnumber GPUs, Gandiva suspends a job at an iteration boundary and resumes another,
so every job makes progress. Here the cluster time-slices in rounds of ``quantum`` seconds: a
job's priority is the number of whole quanta it has run, counted at the end of each round, and at
a round's end a running job falls behind every waiting job that has had fewer slices and is
preempted for it (paying the simulation's ``restart_cost`` on resume). Rounds keep the swaps of
all jobs at the same instants, one event per round however many jobs share the cluster.
Gandiva's other mechanisms — packing two jobs on one GPU and migration — are not modelled: a GPU
here holds at most one job.
"""

from __future__ import annotations

import math

from .base import EPS, Policy, positive_seconds


class Gandiva(Policy):
    name = "gandiva"
    preemptive = True

    def __init__(self, quantum: float = 600.0, skip_blocked: bool = True) -> None:
        super().__init__(skip_blocked)
        self.quantum = positive_seconds("quantum", quantum)

    def _round_start(self, now: float) -> float:
        q = self.quantum
        return math.floor(now * (1 + EPS) / q + EPS) * q

    def slices(self, state, now) -> int:
        """Whole quanta ``state`` had run when the round containing ``now`` began (a waiting
        job: by ``now``)."""
        q, executed = self.quantum, state.executed
        if state.running:
            begun = math.floor(now * (1 + EPS) / q + EPS) * q - state.started
            if begun > 0:
                executed += begun
        return math.floor(executed * (1 + EPS) / q + EPS)

    def key(self, state, now):
        return (self.slices(state, now), state.job.arrival, state.index)

    def next_key_change(self, state, now):
        """The first round end by which ``state`` has run one more whole quantum."""
        q = self.quantum
        crossing = state.started + (self.slices(state, now) + 1) * q - state.executed
        return max(math.ceil(crossing * (1 - EPS) / q - EPS) * q, self._round_start(now) + q)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(quantum={self.quantum})"
