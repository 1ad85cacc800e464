"""The all-reduce way: every rank holds a partition *and* a replica of the coordinator.

Each superstep, every rank computes its statistics, the ranks all-reduce them over ``mlsys.comm``
(real processes, shared memory), and every rank makes the same decision from the same sum, so no
decision ever travels: the pattern of Horovod, DDP and the AllReduce mode of XGBoost and
LightGBM. The all-reduce is the superstep's barrier: no rank leaves it before the slowest arrived.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np

from ..comm import launch
from ..comm.group import ProcessGroup
from ..comm.schedules import ALGORITHMS
from .algorithm import Algorithm
from .run import Run, Sizes, Span, check_parts

ITEMSIZE = 8  # statistics are float64
# With algorithm="auto" the shared-memory transport runs its compiled all-reduce, which sums the
# ranks' buffers in rank order and moves data as the "direct" schedule does (mlsys.comm.native).
AUTO_SCHEDULE = "direct"


def _rank(group: ProcessGroup, algorithm: Algorithm, parts: Sequence[dict],
          collective: str) -> tuple:
    partition = algorithm.partition(parts[group.rank])
    coordinator = algorithm.coordinator()
    clock, times, sizes, counts = time.perf_counter, [], Sizes(), []
    group.barrier()
    start = clock()
    for step in range(algorithm.steps):
        t0 = clock()
        stats = partition.statistics(step)
        t1 = clock()
        group.all_reduce(stats, algorithm=collective)
        t2 = clock()
        decision = coordinator.decide(stats, step)
        if step + 1 < algorithm.steps:
            partition = partition.apply(decision, step)
        times.append((t0, t1, t2, clock()))
        sizes.add(stats, decision)
        counts.append(stats.size)
    group.barrier()
    seconds = clock() - start
    digest = hashlib.sha256(np.ascontiguousarray(decision).tobytes()).hexdigest()
    model = coordinator.result() if group.rank == 0 else None
    return model, start, seconds, times, (sizes.means(), counts), digest


def run_allreduce(algorithm: Algorithm, parts: Sequence[dict], collective: str = "auto",
                  timeout: float = 60.0) -> Run:
    """Fit on ``len(parts)`` processes that all-reduce the statistics with ``collective`` (an
    :data:`mlsys.comm.ALGORITHMS` name or ``"auto"``); every rank decides for itself."""
    check_parts(algorithm, parts, 2, "run_allreduce")
    if collective != "auto" and collective not in ALGORITHMS:
        raise ValueError(f"run_allreduce: unknown all-reduce algorithm {collective!r}; expected "
                         f"'auto' or one of {sorted(ALGORITHMS)}")
    world = len(parts)
    results = launch(_rank, world, algorithm, parts, collective, timeout=timeout)
    digests = {r[5] for r in results}
    if len(digests) != 1:  # never silently wrong: the replicas must agree bit for bit
        raise RuntimeError("run_allreduce: the ranks' coordinators made different final decisions")
    name = AUTO_SCHEDULE if collective == "auto" else collective
    (statistics_bytes, decision_bytes), counts = results[0][4]
    schedules = {n: ALGORITHMS[name](world, n) for n in set(counts)}
    moved = sum(schedules[n].bytes_sent(ITEMSIZE) for n in counts)
    start = min(r[1] for r in results)
    spans = []
    for step in range(algorithm.steps):
        arrived = max(r[3][step][1] for r in results)  # the last rank's statistics are ready
        for rank, r in enumerate(results):
            t0, t1, t2, t3 = (t - start for t in r[3][step])
            last = arrived - start
            worker = f"worker {rank}"
            spans += [Span(worker, "compute", step, t0, t1),
                      Span(worker, "wait", step, t1, max(t1, min(last, t2))),
                      Span(worker, "comm", step, max(t1, min(last, t2)), t2),
                      Span(worker, "update", step, t2, t3)]
    seconds = max(r[2] for r in results)
    return Run("all-reduce", world, results[0][0], algorithm.steps, seconds, float(moved),
               statistics_bytes, decision_bytes, spans)
