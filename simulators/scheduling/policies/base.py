"""The policy interface: a priority key per job, plus a few switches.

The default :meth:`Policy.schedule` walks the waiting queue best key first, starts every job the
placement accepts, and — for preemptive policies — preempts running jobs whose keys are worse.
Most policies only define :meth:`Policy.key`; a notebook cell can do the same::

    class LargestFirst(Policy):
        name = "largest-first"
        def key(self, state, now):
            return (-state.gpus, state.job.arrival)

Keys are tuples of numbers; smaller runs first. A waiting job's key may change only at the times
:meth:`next_wait_change` announces (the queue is a heap); a running job's key may improve at any
time (it is refreshed when compared) but may only get worse at the times :meth:`next_key_change`
announces, or at every ``rekey_interval`` when all keys are recomputed. At an announced time the
simulator calls :meth:`on_timer` first, so a policy may keep its own per-job state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..simulator import JobState, Simulation

#: Relative tolerance for service thresholds, so a timer set for a threshold crosses it.
EPS = 1e-9


def positive_seconds(name: str, value: float) -> float:
    """``value`` as a float, or an error naming ``name`` unless it is a finite time > 0 s."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite time > 0 s, got {value}")
    return float(value)


class Policy:
    """Base class of scheduling policies (first come, first served unless ``key`` says else)."""

    name = "policy"
    preemptive = False
    rekey_interval: float | None = None

    def __init__(self, skip_blocked: bool = True) -> None:
        self.skip_blocked = bool(skip_blocked)  # False: a blocked best job holds everyone back

    def key(self, state: JobState, now: float) -> tuple:
        """Priority of ``state`` at ``now``; smaller runs first."""
        return (state.job.arrival, state.index)

    def next_key_change(self, state: JobState, now: float) -> float | None:
        """When a running job's key next gets worse (``None``: never while it runs)."""
        return None

    def next_wait_change(self, state: JobState, now: float) -> float | None:
        """When a waiting job's key next changes (``None``: never while it waits)."""
        return None

    def on_timer(self, state: JobState, now: float) -> None:
        """Called at (or, while nobody waits, after) a time announced for ``state``, before its
        key is recomputed."""

    def on_start(self, state: JobState, now: float) -> None:
        """Called when a job starts or resumes, before its key is computed as a running job."""

    def on_preempt(self, state: JobState, now: float) -> None:
        """Called when a running job is preempted, before it is queued again."""

    def attach(self, sim: Simulation) -> None:
        """Called once before the run (policies that learn from the trace override it)."""

    def on_arrival(self, state: JobState, now: float) -> None:
        """Called when a job arrives, before it is queued."""

    def on_finish(self, state: JobState, now: float) -> None:
        """Called when a job finishes."""

    def on_rekey(self, now: float) -> None:
        """Called at every ``rekey_interval`` just before all keys are recomputed."""

    def schedule(self, sim: Simulation, now: float) -> None:
        """Start (and, if preemptive, preempt for) waiting jobs in key order.

        A job that can neither start nor preempt its way in blocks every waiting job of its size
        for this pass (they have worse keys). With ``skip_blocked`` smaller jobs behind it may
        still start (greedy backfilling, which can starve large jobs); without, the pass ends.
        """
        blocked: set[int] = set()
        can_preempt = self.preemptive
        while True:
            reach = None if can_preempt or not self.skip_blocked else sim.free_gpus
            state = sim.best_waiting(reach, blocked)
            if state is None:
                return
            if sim.try_start(state):
                continue
            if can_preempt:
                started = sim.preempt_for(state)
                if started:
                    continue
                # no running job is worse than this one, so none is worse than those after it
                can_preempt = started is not None
            if not self.skip_blocked:
                return
            blocked.add(state.gpus)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(skip_blocked={self.skip_blocked})"
