"""The parameter-server way: rank 0 holds the coordinator, ranks 1..W hold the partitions.

Each superstep every worker *pushes* its statistics to the server over ``mlsys.comm``
point-to-point messages, the server sums them (in worker order), decides, and every worker *pulls*
the decision (Li et al., OSDI 2014; synchronous, as in BSP). It is the shape of
:func:`mlsys.comm.parameter_server` (chapter 6), which pushes gradients of an ``nn.Module`` and
can also run asynchronously; here the pushed values are any algorithm's statistics. The server's
link carries every worker's push and pull, which is what limits a single server at scale.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..comm import launch
from ..comm.group import ProcessGroup
from .algorithm import Algorithm
from .run import Run, Sizes, Span, check_parts, sum_in_order


def _serve(group: ProcessGroup, algorithm: Algorithm) -> tuple:
    coordinator = algorithm.coordinator()
    workers = range(1, group.world_size)
    clock, times, moved, sizes = time.perf_counter, [], 0, Sizes()
    group.barrier()
    start = clock()
    for step in range(algorithm.steps):
        t0 = clock()
        stats = [group.recv(w) for w in workers]
        t1 = clock()
        decision = coordinator.decide(sum_in_order(stats), step)
        t2 = clock()
        sizes.add(stats[0], decision)
        moved += sum(s.nbytes for s in stats)
        if step + 1 < algorithm.steps:
            for w in workers:
                group.send(decision, w)
            moved += len(workers) * decision.nbytes
        times.append((t0, t1, t2, clock()))
    group.barrier()
    return coordinator.result(), start, clock() - start, times, moved, sizes.means()


def _work(group: ProcessGroup, algorithm: Algorithm, part: dict) -> tuple:
    partition = algorithm.partition(part)
    clock, times = time.perf_counter, []
    group.barrier()
    start = clock()
    for step in range(algorithm.steps):
        t0 = clock()
        stats = partition.statistics(step)
        t1 = clock()
        group.send(stats, 0)
        t2 = clock()
        t3 = t4 = t2
        if step + 1 < algorithm.steps:
            decision = group.recv(0)
            t3 = clock()
            partition = partition.apply(decision, step)
            t4 = clock()
        times.append((t0, t1, t2, t3, t4))
    group.barrier()
    return start, times


def _rank(group: ProcessGroup, algorithm: Algorithm, parts: Sequence[dict]) -> tuple:
    if group.rank == 0:
        return _serve(group, algorithm)
    return _work(group, algorithm, parts[group.rank - 1])


def run_parameter_server(algorithm: Algorithm, parts: Sequence[dict], timeout: float = 60.0) -> Run:
    """Fit on ``len(parts) + 1`` processes: a server (rank 0) and one worker per partition."""
    check_parts(algorithm, parts, 1, "run_parameter_server")
    results = launch(_rank, len(parts) + 1, algorithm, parts, timeout=timeout)
    model, start, seconds, served, moved, (statistics_bytes, decision_bytes) = results[0]
    spans = []
    for step, (r0, r1, r2, r3) in enumerate(served):
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
    return Run("parameter server", len(parts), model, algorithm.steps, seconds, float(moved),
               statistics_bytes, decision_bytes, spans)
