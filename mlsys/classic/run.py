"""What a fit reports, whichever way it ran, and the single-process way.

Every executor returns a :class:`Run`: the fitted model, the wall time of the supersteps, the
payload bytes that crossed between processes, and :class:`Span` records of what each process did
when (``compute``: statistics; ``comm``: moving statistics or decisions; ``wait``: blocked on
the slowest peer; ``update``: deciding and applying; ``overhead``: the engine's own work, such as
scheduling tasks). Span times are seconds from the start of the first superstep; the processes of
one machine share one monotonic clock, so spans of different processes line up.
``simulators.dataflow.timeline`` turns them into a :class:`~simulators.core.Recorder` timeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np

from .algorithm import Algorithm


@dataclass(frozen=True)
class Span:
    """``worker`` did ``kind`` of work for superstep ``step`` (-1: not known, as in Dask's task
    stream) from ``start`` to ``end`` seconds."""

    worker: str
    kind: str
    step: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Run:
    """One fit: the model, the time and bytes of its supersteps, and its spans."""

    way: str
    workers: int
    model: Any
    steps: int
    seconds: float
    bytes_moved: float
    statistics_bytes: float  # one partition's statistics, mean over the steps
    decision_bytes: float  # the decision, mean over the steps
    spans: list[Span] = field(default_factory=list)

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps

    @property
    def bytes_per_step(self) -> float:
        return self.bytes_moved / self.steps

    def time_in(self, kind: str) -> float:
        """Seconds per step the average worker spent on ``kind`` of work."""
        workers = {s.worker for s in self.spans if s.worker.startswith("worker")}
        total = sum(s.duration for s in self.spans if s.kind == kind and s.worker in workers)
        return total / max(len(workers), 1) / self.steps

    def summary(self) -> dict[str, Any]:
        """One table row: way, workers, ms per step, the split of a step, bytes per step."""
        row = {"way": self.way, "workers": self.workers, "steps": self.steps,
               "ms per step": 1e3 * self.seconds_per_step}
        row.update({f"{kind} ms": 1e3 * self.time_in(kind) for kind in ("compute", "comm", "wait")})
        row["KB moved per step"] = self.bytes_per_step / 1e3
        return row


class Sizes:
    """Running totals of the statistics and decision sizes, for a run's mean bytes per step."""

    def __init__(self) -> None:
        self.statistics = self.decisions = self.steps = 0

    def add(self, statistics: np.ndarray, decision: np.ndarray) -> None:
        self.statistics += statistics.nbytes
        self.decisions += decision.nbytes
        self.steps += 1

    def means(self) -> tuple[float, float]:
        return self.statistics / max(self.steps, 1), self.decisions / max(self.steps, 1)


def sum_in_order(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``((a0 + a1) + a2) + ...``: partition order, the order every executor sums in."""
    return reduce(np.add, arrays)


def check_parts(algorithm: Algorithm, parts: Sequence[dict], minimum: int, what: str) -> None:
    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"{what}: expected an mlsys.classic Algorithm, got {type(algorithm).__name__}")
    if len(parts) < minimum:
        raise ValueError(f"{what}: needs at least {minimum} partition(s), got {len(parts)}")
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or "x" not in part:
            raise ValueError(f"{what}: partition {i} must be a dict with an 'x' array "
                             "(see mlsys.classic.split)")


def run_local(algorithm: Algorithm, parts: Sequence[dict]) -> Run:
    """Fit in this process, one partition after another (one partition: the single-process build)."""
    check_parts(algorithm, parts, 1, "run_local")
    partitions = [algorithm.partition(p) for p in parts]
    coordinator = algorithm.coordinator()
    spans: list[Span] = []
    sizes = Sizes()
    clock = time.perf_counter
    start = clock()
    for step in range(algorithm.steps):
        stats = []
        for i, partition in enumerate(partitions):
            t = clock()
            stats.append(partition.statistics(step))
            spans.append(Span(f"worker {i}", "compute", step, t - start, clock() - start))
        t = clock()
        decision = coordinator.decide(sum_in_order(stats), step)
        sizes.add(stats[0], decision)
        if step + 1 < algorithm.steps:
            partitions = [p.apply(decision, step) for p in partitions]
        spans.append(Span("worker 0", "update", step, t - start, clock() - start))
    return Run("single process" if len(parts) == 1 else "one process", len(parts),
               coordinator.result(), algorithm.steps, clock() - start, 0.0, *sizes.means(), spans)
