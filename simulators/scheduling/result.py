"""What a simulation leaves behind: per-job times, GPU segments, samples, and their checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

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

    def job_rows(self) -> list[dict[str, Any]]:
        """One row per job: id, arrival, first start, end, GPUs, preemptions, JCT, work (seconds)."""
        return [{"job": job.id, "arrival": float(a), "start": float(s), "end": float(f), "gpus": int(g),
                 "preemptions": int(p), "jct": float(f - a), "work": job.work}
                for job, a, s, f, g, p in zip(self.jobs, self.arrival, self.start, self.finish,
                                              self.gpus, self.preemptions)]

    def segment_rows(self) -> list[dict[str, Any]]:
        """The segment log: who held which GPUs (``node:gpu`` pairs) when, and what it achieved."""
        return [{"job": self.jobs[seg.job].id, "start": seg.start, "end": seg.end,
                 "gpus": " ".join(f"{node}:{gpu}" for node, gpu in seg.gpus),
                 "overhead": seg.overhead, "progress": seg.progress, "slowdown": seg.slowdown}
                for seg in self.segments]

    def save_jobs(self, path: str | Path) -> Path:
        """Write :meth:`job_rows` as CSV, or JSON when ``path`` ends in ``.json``."""
        return _save_rows(path, self.job_rows())

    def save_segments(self, path: str | Path) -> Path:
        """Write :meth:`segment_rows` as CSV, or JSON when ``path`` ends in ``.json``."""
        return _save_rows(path, self.segment_rows())

    def chrome_trace(self, max_counter_points: int = 5000) -> dict[str, Any]:
        """The run as Chrome-trace JSON (Perfetto): a span per job per GPU, counters of waiting
        jobs and busy GPUs, and markers at each arrival and preemption.

        Counters are the state after every event; a long run's counters are downsampled to at
        most ``max_counter_points`` times (the state at evenly spaced instants), so an 80,000-job
        replay stays a file a browser opens.
        """
        trace = self.to_recorder().to_chrome_trace()
        events = trace["traceEvents"]
        pid = 1 + max((e["pid"] for e in events), default=-1)
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": "scheduler"}})
        for tid, name in enumerate(("arrivals", "preemptions")):
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                           "args": {"name": name}})
        us = 1e6
        for job, t in zip(self.jobs, self.arrival):
            events.append({"name": f"arrive {job.id}", "ph": "i", "s": "t", "ts": t * us,
                           "pid": pid, "tid": 0, "args": {"gpus": job.gpus}})
        for seg in self.segments:
            if seg.end < self.finish[seg.job]:
                events.append({"name": f"preempt {self.jobs[seg.job].id}", "ph": "i", "s": "t",
                               "ts": seg.end * us, "pid": pid, "tid": 1})
        times, busy, queued = (self.samples[k] for k in ("time", "busy", "queued"))
        if len(times) > max_counter_points:
            grid = np.linspace(times[0], times[-1], max_counter_points)
            at = np.searchsorted(times, grid, side="right") - 1
            times, busy, queued = grid, busy[at], queued[at]
        for t, b, q in zip(times.tolist(), busy.tolist(), queued.tolist()):
            events.append({"name": "busy GPUs", "ph": "C", "ts": t * us, "pid": pid,
                           "args": {"busy": b}})
            events.append({"name": "waiting jobs", "ph": "C", "ts": t * us, "pid": pid,
                           "args": {"waiting": q}})
        return trace

    def save_chrome_trace(self, path: str | Path, max_counter_points: int = 5000) -> Path:
        """Write :meth:`chrome_trace` to ``path`` (open it in Perfetto or chrome://tracing)."""
        path = Path(path)
        with open(path, "w") as handle:
            json.dump(self.chrome_trace(max_counter_points), handle, separators=(",", ":"))
        return path


def _save_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    with open(path, "w", newline="") as handle:
        if path.suffix == ".json":
            json.dump(rows, handle, indent=1)
        else:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
    return path
