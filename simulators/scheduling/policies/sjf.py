"""Shortest job first (non-preemptive), with oracle knowledge of each job's duration."""

from __future__ import annotations

from .base import Policy


class SJF(Policy):
    name = "sjf"

    def key(self, state, now):
        return (state.job.work, state.job.arrival, state.index)
