"""Tiresias's discretized two-dimensional least-attained-service (2D-LAS), Gu et al. NSDI'19.

No duration knowledge: a job's attained service is GPUs x time held (both dimensions of a gang
job). Jobs sit in ``K`` priority queues split at ``thresholds`` of attained GPU-seconds; a job is
demoted when it crosses a threshold. Inside a queue, as in Tiresias, **running jobs stay ahead of
waiting ones**: a job that started keeps its GPUs against every later or waiting job of its queue
and loses them only to a higher queue. Waiting jobs of a queue wait in arrival order, except that a
preempted job goes back to the front of the waiting ones; a job demoted into a queue joins its end.

Starvation guard (``promote_knob``, Tiresias's PromoteKnob): a job in a lower queue that has waited
``promote_knob`` times as long as it has run since its last promotion returns to the top queue,
with its attained service counted afresh from there.

Defaults: thresholds at 1, 10 and 100 GPU-hours, no promotion. Tiresias's own simulator uses
3,250 and 7,200 GPU-seconds (three queues); with one threshold near an hour most Philly jobs land
in the bottom queue and 2D-LAS degrades towards FIFO.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

from .base import EPS, Policy


def check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    """``thresholds`` as floats, or an error unless they are finite, positive and increasing."""
    values = tuple(float(t) for t in thresholds)
    if any(not (math.isfinite(t) and t > 0) for t in values) or list(values) != sorted(set(values)):
        raise ValueError(f"thresholds must be finite, positive and increasing GPU-seconds, "
                         f"got {tuple(thresholds)}")
    return values


class LAS(Policy):
    name = "las"
    preemptive = True

    def __init__(self, thresholds: Sequence[float] = (3600.0, 36000.0, 360000.0),
                 promote_knob: float | None = None, skip_blocked: bool = True) -> None:
        super().__init__(skip_blocked)
        self.thresholds = check_thresholds(thresholds)
        if promote_knob is not None and not (math.isfinite(promote_knob) and promote_knob > 0):
            raise ValueError(f"promote_knob must be a finite number > 0 (or None), got {promote_knob}")
        self.promote_knob = promote_knob

    def attach(self, sim) -> None:
        n = len(sim.states)
        self.level = [0] * n       # current queue (0 is the highest)
        self.order = [0] * n       # place inside the queue (see key)
        self.base = [0.0] * n      # attained GPU-seconds at the last promotion
        self.ran = [0.0] * n       # seconds held at the last promotion
        self.waited = [0.0] * n    # seconds waited since the job first ran after its last promotion
        self.entered = [0.0] * n   # when a running job started, or was demoted into its queue
        self.demoted = [False] * n # whether it entered its queue running, by demotion
        self._seq = itertools.count(1)

    def queue(self, attained: float) -> int:
        """Index of the priority queue for ``attained`` GPU-seconds (0 is the highest)."""
        return bisect.bisect_right(self.thresholds, attained * (1 + EPS) + EPS)

    def key(self, state, now):
        i = state.index
        if state.running and not (self.demoted[i] and self.entered[i] == now):
            # running: in the order jobs joined the queue's running ones; of those that joined at
            # one instant, the jobs that started before the jobs demoted into it
            return (self.level[i], 0, self.entered[i], self.demoted[i], self.order[i])
        return (self.level[i], 1, self.order[i], 0, 0)  # waiting, or demoted this instant

    def next_key_change(self, state, now):
        i = state.index
        if self.level[i] >= len(self.thresholds):
            return None
        return now + (self.base[i] + self.thresholds[self.level[i]] - state.attained_at(now)) / state.gpus

    def next_wait_change(self, state, now):
        i = state.index
        if self.promote_knob is None or self.level[i] == 0:
            return None
        return state.enqueued + self.promote_knob * (state.executed - self.ran[i]) - self.waited[i]

    def on_arrival(self, state, now):
        self.order[state.index] = next(self._seq)

    def on_start(self, state, now):
        i = state.index
        if state.executed > self.ran[i]:
            self.waited[i] += now - state.enqueued
        self.order[i], self.entered[i], self.demoted[i] = next(self._seq), now, False

    def on_preempt(self, state, now):
        i = state.index
        self.level[i] = max(self.level[i], self.queue(state.attained - self.base[i]))
        if not (self.demoted[i] and self.entered[i] == now):  # else it stays at the end
            self.order[i] = -next(self._seq)  # the worst go first, so the order is kept

    def on_timer(self, state, now):
        i = state.index
        if state.running:  # demoted: to the end of the queue its attained service reached
            self.level[i] = self.queue(state.attained_at(now) - self.base[i])
            self.entered[i], self.demoted[i] = now, True
        else:              # promoted: to the end of the top queue, attained service afresh
            self.level[i], self.base[i], self.ran[i] = 0, state.attained, state.executed
            self.waited[i] = 0.0
        self.order[i] = next(self._seq)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(thresholds={self.thresholds}, promote_knob={self.promote_knob})"
