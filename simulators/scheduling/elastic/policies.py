"""The elastic simulator's policies: each round, how many GPUs each active job gets.

* :class:`Pollux` (Qiao et al., OSDI'21): jobs are elastic in GPUs *and* batch size. Each job's
  speedup is its best goodput on ``r`` GPUs over its goodput on a fair share of the cluster; the
  allocation maximizes the power mean (``p = -1``) of the speedups, each discounted by a restart
  penalty when its GPUs change, ``(age - 30 s x restarts) / (age + 30 s)``. Pollux searches with a
  genetic algorithm (NSGA-II, 100 x 100 per round); here a documented simpler optimiser adds one
  GPU at a time to the job whose term of the power mean improves most (first one GPU each, in
  order of attained service, as the artifact's repair step favours), until GPUs or gains run out.
  Its speedup model is the measured throughput table rather than the model a Pollux agent fits
  online; like the agent, a job may at most double the replicas it has run on.
* :class:`Optimus` (Peng et al., EuroSys'18, "+Oracle+TunedJobs" as in the Pollux artifact): fixed
  batch sizes; one GPU each in arrival order, then GPUs one at a time to the job whose predicted
  remaining time drops most (``(t(r) - t(r + 1)) x`` remaining steps, oracle step times).
* :class:`Tiresias` ("+TunedJobs"): fixed GPUs and batch sizes; 2D-LAS with two queues split at
  16 GPU-hours, running jobs ahead of waiting ones in a queue (Tiresias's rule), non-preemptive
  within a queue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .goodput import MOST_GPUS, best_goodputs, fixed_goodput, packed
from .job import ElasticJob

RESTART = 30.0  # seconds of checkpoint-restore per reallocation (the artifact's)


class ElasticPolicy:
    """``allocate`` returns GPUs per active job; ``pack`` says how they are placed on nodes."""

    name = "policy"
    pack = True        # fewest nodes, best fit (else emptiest nodes first, as the artifact does)

    def allocate(self, jobs: Sequence[ElasticJob], gpus: int, now: float) -> dict[ElasticJob, int]:
        raise NotImplementedError


class Pollux(ElasticPolicy):
    name = "pollux"

    def __init__(self, fairness: float = -1.0) -> None:
        if not (math.isfinite(fairness) and fairness < 0):
            raise ValueError(f"fairness must be a finite power-mean exponent < 0, got {fairness}")
        self.p = fairness

    def limit(self, job: ElasticJob, gpus: int) -> int:
        """Most GPUs ``job`` may get: twice what it has run on, within what its batch allows."""
        app = job.app
        cap = min(gpus, MOST_GPUS, job.max_gpus or MOST_GPUS,
                  (job.batch_size or app.max_batch_size) // app.min_local_bsz)
        return min(cap, max(2 * job.most_replicas, 1))

    def speedups(self, job: ElasticJob, gpus: int, fair: int) -> np.ndarray:
        """Speedup on 0..limit GPUs (packed on the fewest nodes) relative to ``fair`` GPUs."""
        grad, most, fair = job.grad(), self.limit(job, gpus), min(fair, gpus)
        if job.batch_size is None:
            good = best_goodputs(job.app, max(most, fair), grad)
        else:  # a batch size held fixed
            good = np.array([0.0] + [fixed_goodput(job.app, packed(r), job.batch_size, grad)
                                     for r in range(1, max(most, fair) + 1)])
        return good[:most + 1] / (good[fair] or good[1])

    def allocate(self, jobs, gpus, now):
        fair = max(1, math.ceil(gpus / max(len(jobs), 1)))
        order = sorted(jobs, key=lambda j: (j.attained, j.arrival))
        values = []
        for job in order:
            speedup = self.speedups(job, gpus, fair)
            age = now - job.arrival
            factor = max(age - job.restarts * RESTART, 0.0) / (age + RESTART)
            penalty = np.full(len(speedup), factor)
            if job.replicas < len(speedup):
                penalty[job.replicas] = 1.0
            values.append(speedup * penalty)
        counts = [0] * len(order)
        free = gpus
        term = [self._term(0.0)] * len(order)
        for i in range(len(order)):  # one GPU each first, least attained service first
            if free and len(values[i]) > 1:
                counts[i], free = 1, free - 1
                term[i] = self._term(values[i][1])
        while free:
            best, gain = -1, 0.0
            for i, value in enumerate(values):
                r = counts[i]
                if counts[i] and r + 1 < len(value):
                    improvement = term[i] - self._term(value[r + 1])
                    if improvement > gain:
                        best, gain = i, improvement
            if best < 0:
                break
            counts[best] += 1
            free -= 1
            term[best] = self._term(values[best][counts[best]])
        return dict(zip(order, counts))

    def _term(self, speedup: float) -> float:
        """A job's term of the power mean, to be made small: ``(speedup + 1e-3) ** p``."""
        return (speedup + 1e-3) ** self.p


class Optimus(ElasticPolicy):
    name = "optimus"
    pack = False

    def allocate(self, jobs, gpus, now):
        counts = {}
        gains = {}
        free = gpus
        for job in sorted(jobs, key=lambda j: j.arrival):
            counts[job] = 1 if free else 0
            free -= counts[job]
        for job in jobs:
            gains[job] = self._gain(job, counts[job]) if counts[job] and free else 0.0
        while free > 0 and gains and max(gains.values()) > 0:
            job = max(gains, key=gains.get)
            counts[job] += 1
            free -= 1
            gains[job] = self._gain(job, counts[job]) if free else 0.0
        return counts

    @staticmethod
    def limit(job: ElasticJob) -> int:
        return min(job.max_gpus or MOST_GPUS, job.batch_size // job.app.min_local_bsz)

    def _gain(self, job: ElasticJob, r: int) -> float:
        if r + 1 > self.limit(job):
            return 0.0
        app = job.app
        last = app.max_epochs - 1
        remaining = app.iterations(job.batch_size, last) - app.iterations(job.batch_size, job.epoch) \
            if job.epoch < last else 1.0
        return (self.step_time(job, r) - self.step_time(job, r + 1)) * remaining

    @staticmethod
    def step_time(job: ElasticJob, r: int) -> float:
        """Oracle time of one step at the job's batch size on ``r`` packed GPUs."""
        app = job.app
        local = math.ceil(job.batch_size / r - 1e-8)
        accum = math.ceil(local / app.max_local_bsz - 1e-8) - 1
        if r == 1:
            accum = max(1, accum)
        atomic = math.ceil(local / (accum + 1) - 1e-8)
        atomic = min(atomic, int(app.max_batch_size / (r * (accum + 1))))
        step, sync = app.step_time(packed(r), atomic)
        return step + (step - sync) * accum


class Tiresias(ElasticPolicy):
    name = "tiresias"
    pack = False

    def __init__(self, threshold: float = 16 * 3600.0) -> None:
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a finite number of GPU-seconds > 0, got {threshold}")
        self.threshold = threshold

    def allocate(self, jobs, gpus, now):
        def key(job):
            queue = int(job.attained >= self.threshold)
            return (queue, job.replicas == 0, job.arrival)

        counts, free = {}, gpus
        for job in sorted(jobs, key=key):
            counts[job] = job.gpus if job.gpus <= free else 0
            free -= counts[job]
        return counts
