"""Shortest remaining time first (preemptive), with oracle durations.

Optimal for average completion time on one server (Schrage 1968); the "perfect knowledge"
upper bound Tiresias compares against. A running job's remaining time only shrinks, so its key
only improves and needs no timers.
"""

from __future__ import annotations

from .base import Policy


class SRTF(Policy):
    name = "srtf"
    preemptive = True

    def key(self, state, now):
        return (state.remaining_at(now), state.job.arrival, state.index)
