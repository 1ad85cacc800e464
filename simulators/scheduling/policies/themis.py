"""Finish-time fairness, after Themis (Mahajan et al., NSDI'20).

A job's finish-time fairness is ``rho = T_shared / T_ideal``: its completion time in the shared
cluster over its running time on a private ``1/N`` share of the cluster (``N`` contending jobs;
a job wanting more than ``C/N`` GPUs runs proportionally slower there). Every ``lease`` seconds
the policy re-ranks all jobs by their projected ``rho`` — time already spent plus remaining work,
over ``T_ideal`` — and gives GPUs to the worst-off first, preempting better-off jobs. Themis's
auction between per-application agents is replaced by this direct ranking (its outcome when every
agent bids its true ``rho``).
"""

from __future__ import annotations

from .base import Policy, positive_seconds


class Themis(Policy):
    name = "themis"
    preemptive = True

    def __init__(self, lease: float = 1800.0, skip_blocked: bool = True) -> None:
        super().__init__(skip_blocked)
        self.rekey_interval = positive_seconds("lease", lease)
        self._epoch = 0.0
        self._share = 1.0  # GPUs per contending job at the last lease

    def attach(self, sim) -> None:
        self._sim = sim
        self.on_rekey(0.0)

    def on_rekey(self, now: float) -> None:
        self._epoch = now
        self._share = self._sim.spec.gpus / max(1, self._sim.active_jobs)

    def rho(self, state, now: float) -> float:
        """Projected finish-time fairness of ``state`` at the last lease (keys stay fixed between)."""
        t = max(self._epoch, state.job.arrival)
        ideal = state.job.work * max(1.0, state.gpus / self._share)
        return (t - state.job.arrival + state.remaining) / ideal

    def key(self, state, now):
        return (-self.rho(state, now), state.job.arrival, state.index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lease={self.rekey_interval})"
