"""EASY backfilling (Lifka 1995; Mu'alem and Feitelson 2001), the HPC batch-scheduler default.

Jobs start in arrival order. When the first job in line does not fit, it gets a reservation at
the *shadow time* — when enough running jobs will have finished (their durations are known, as
with exact user estimates) — and later jobs may jump ahead only if they end before the shadow
time or use GPUs the reserved job will not need (the *extra* GPUs). So backfilling never delays
the head of the line, unlike FIFO with skipping, which can starve large jobs.
"""

from __future__ import annotations

from contextlib import closing

from .base import Policy


class EASY(Policy):
    """``lookahead``: how many waiting jobs behind the head are considered per pass."""

    name = "easy"

    def __init__(self, lookahead: int = 32) -> None:
        super().__init__(skip_blocked=True)
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        self.lookahead = lookahead

    def schedule(self, sim, now):
        while (head := sim.best_waiting()) is not None and sim.try_start(head):
            pass
        if head is None or sim.free_gpus == 0:
            return
        shadow = extra = None
        with closing(sim.waiting(max_gpus=sim.free_gpus)) as queue:
            for scanned, state in enumerate(queue):
                if scanned >= self.lookahead or sim.free_gpus == 0:
                    break
                if state.gpus > sim.free_gpus:
                    continue
                if shadow is None:
                    shadow, extra = self._reservation(sim, head)
                end = now + sim.restart_cost * (state.preemptions > 0) \
                    + state.remaining * sim.spread_slowdown
                if end <= shadow:
                    sim.try_start(state)
                elif state.gpus <= extra and sim.try_start(state):
                    extra -= state.gpus

    @staticmethod
    def _reservation(sim, head) -> tuple[float, float]:
        """Shadow time for ``head`` and the GPUs free then beyond what it needs."""
        free = sim.free_gpus
        for state in sorted(sim.running_states(), key=lambda s: s.finish_at):
            free += state.gpus
            if free >= head.gpus:
                return state.finish_at, free - head.gpus
        raise AssertionError(f"job {head.job.id} needs {head.gpus} GPUs, more than the cluster frees")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lookahead={self.lookahead})"
