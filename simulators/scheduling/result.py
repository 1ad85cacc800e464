"""What a simulation leaves behind: per-job times, GPU segments, samples, and their checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from simulators.core.recorder import Recorder

if TYPE_CHECKING:
    from .simulator import Simulation


class Segment(NamedTuple):
    """Job ``job`` held ``gpus`` (``(node, gpu)`` pairs) from ``start`` to ``end``.

    The first ``overhead`` seconds restored a checkpoint; the rest advanced the job by
    ``progress`` consolidated seconds at ``slowdown`` (so ``end - start = overhead +
    progress * slowdown`` unless it was preempted during the overhead).
    """

    job: int
    start: float
    end: float
    gpus: tuple[tuple[int, int], ...]
    overhead: float
    progress: float
    slowdown: float


class Result:
    """Outcome of :meth:`Simulation.run`: numpy arrays per job plus the segment log."""

    def __init__(self, sim: Simulation) -> None:
        states = sim.states
        self.trace_name, self.policy = sim.trace.name, sim.policy.name
        self.placement, self.spec = sim.placement_name, sim.spec
        self.jobs = sim.trace.jobs
        self.arrival = np.array([s.job.arrival for s in states])
        self.start = np.array([s.first_start for s in states])
        self.finish = np.array([s.finish for s in states])
        self.gpus = np.array([s.gpus for s in states])
        self.work = np.array([s.job.work for s in states])
        self.preemptions = np.array([s.preemptions for s in states])
        self.segments = sim.segments
        self.samples = {k: np.frombuffer(v, dtype=float) for k, v in sim.samples.items()}
        self.events = sim.events

    @property
    def jct(self) -> np.ndarray:
        """Job completion times: finish minus arrival (seconds)."""
        return self.finish - self.arrival

    @property
    def queueing(self) -> np.ndarray:
        """Queueing delay before each job first ran (seconds)."""
        return self.start - self.arrival

    @property
    def makespan(self) -> float:
        return float(self.finish.max() - self.arrival.min())

    def check_conservation(self, rtol: float = 1e-9) -> None:
        """Raise ``AssertionError`` unless the run conserved jobs, work and GPUs.

        Every job finished exactly once after it arrived; each job's segments add up to its work;
        GPU-seconds held equal work times slowdown plus restart overheads; and no GPU ever held
        two jobs at once.
        """
        n = len(self.jobs)
        if np.isnan(self.finish).any():
            raise AssertionError(f"{int(np.isnan(self.finish).sum())} of {n} jobs never finished")
        if (self.finish < self.arrival).any() or (self.start < self.arrival).any():
            raise AssertionError("a job started or finished before it arrived")
        progress = np.zeros(n)
        ends = np.zeros(n)
        held = accounted = 0.0
        for seg in self.segments:
            progress[seg.job] += seg.progress
            ends[seg.job] = max(ends[seg.job], seg.end)
            g = len(seg.gpus)
            held += g * (seg.end - seg.start)
            accounted += g * (seg.overhead + seg.progress * seg.slowdown)
        if not np.allclose(progress, self.work, rtol=1e-7, atol=1e-6):
            bad = int(np.argmax(np.abs(progress - self.work)))
            raise AssertionError(f"job {self.jobs[bad].id}: segments did {progress[bad]} s of "
                                 f"work, expected {self.work[bad]} s")
        if not np.array_equal(ends, self.finish):
            raise AssertionError("a job's last segment does not end at its finish time")
        if abs(held - accounted) > rtol * max(held, 1.0) + 1e-6:
            raise AssertionError(f"GPU-seconds held {held} != work*slowdown + overheads {accounted}")
        per_gpu: dict[tuple[int, int], list[tuple[float, float]]] = {}
        for seg in self.segments:
            for gpu in seg.gpus:
                per_gpu.setdefault(gpu, []).append((seg.start, seg.end))
        for gpu, spans in per_gpu.items():
            spans.sort()
            for (_, end), (start, _) in zip(spans, spans[1:]):
                if start < end:
                    raise AssertionError(f"GPU {gpu} double-booked: a span starts at {start} "
                                         f"before the previous one ends at {end}")

    def gpu_seconds(self) -> float:
        """GPU-seconds held by all jobs (work, spread slowdowns and restart overheads)."""
        return float(sum(len(s.gpus) * (s.end - s.start) for s in self.segments))

    def to_recorder(self, max_segments: int | None = None) -> Recorder:
        """The run as the course's one event log: a span per job per GPU (Chrome trace, Gantt)."""
        rec = Recorder()
        for seg in self.segments[:max_segments]:
            job = self.jobs[seg.job]
            for node, gpu in seg.gpus:
                if seg.overhead > 0:
                    rec.record(f"restore {job.id}", f"node{node}/gpu{gpu}", seg.start,
                               seg.start + seg.overhead, category="restore", group=f"node{node}")
                rec.record(f"job {job.id}", f"node{node}/gpu{gpu}", seg.start + seg.overhead,
                           seg.end, category=job.model or "job", group=f"node{node}",
                           gpus=job.gpus, slowdown=seg.slowdown)
        return rec
