"""The parameter-server way: rank 0 holds the coordinator, ranks 1..W hold the partitions.

Each superstep every worker *pushes* its statistics to the server, the server sums them (in worker
order), decides, and every worker *pulls* the decision (Li et al., OSDI 2014; synchronous, as in
BSP). It is the push/pull protocol of :mod:`mlsys.comm.ps` that trains ``nn.Module`` s in
chapters 6 and 7, run on statistics: the server's store is the coordinator, a round's pushes are
combined by summing them, and the decision after the last superstep is not pulled. The server's
link carries every worker's push and pull, which is what limits a single server at scale.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ..comm import launch
from ..comm.group import ProcessGroup
from ..comm.ps import serve, work
from .algorithm import Algorithm, Coordinator
from .run import Run, Sizes, Span, check_parts, sum_in_order


class _Deciding:
    """The server's store: a push is the round's summed statistics, a pull the decision."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator, self.sizes, self.decision = coordinator, Sizes(), np.empty(0)

    def values(self) -> np.ndarray:
        return self.decision

    def update(self, total: np.ndarray) -> None:
        self.decision = self.coordinator.decide(total, self.sizes.steps)  # steps decided so far
        self.sizes.add(total, self.decision)


def _rank(group: ProcessGroup, algorithm: Algorithm, parts: Sequence[dict]) -> tuple:
    protocol = {"first_pull": False, "last_pull": False}
    group.barrier()
    start = time.perf_counter()
    if group.rank == 0:
        store = _Deciding(algorithm.coordinator())
        report = serve(group, store, range(1, group.world_size), combine=sum_in_order, **protocol)
        group.barrier()
        return (store.coordinator.result(), start, time.perf_counter() - start, report,
                store.sizes.means())
    partition = algorithm.partition(parts[group.rank - 1])

    def apply(decision: np.ndarray, done: int) -> None:
        nonlocal partition
        partition = partition.apply(decision, done - 1)

    times = work(group, 1, algorithm.steps, lambda step: partition.statistics(step), apply,
                 **protocol)
    group.barrier()
    return start, times


def run_parameter_server(algorithm: Algorithm, parts: Sequence[dict], timeout: float = 60.0) -> Run:
    """Fit on ``len(parts) + 1`` processes: a server (rank 0) and one worker per partition."""
    check_parts(algorithm, parts, 1, "run_parameter_server")
    results = launch(_rank, len(parts) + 1, algorithm, parts, timeout=timeout)
    model, start, seconds, served, (statistics_bytes, decision_bytes) = results[0]
    spans = []
    for step, (r0, r1, r2, r3) in enumerate(served.rounds):
        spans += [Span("server", "wait", step, r0 - start, r1 - start),
                  Span("server", "update", step, r1 - start, r2 - start),
                  Span("server", "comm", step, r2 - start, r3 - start)]
        for w, (_, times) in enumerate(results[1:]):
            t0, t1, t2, t3, t4 = (t - start for t in times[step])
            reply = max(t2, min(r2 - start, t3))  # the server starts sending the decision
            spans += [Span(f"worker {w}", "compute", step, t0, t1),
                      Span(f"worker {w}", "comm", step, t1, t2),
                      Span(f"worker {w}", "wait", step, t2, reply),
                      Span(f"worker {w}", "comm", step, reply, t3),
                      Span(f"worker {w}", "update", step, t3, t4)]
    return Run("parameter server", len(parts), model, algorithm.steps, seconds,
               float(served.pushed_bytes + served.pulled_bytes), statistics_bytes, decision_bytes,
               spans)
