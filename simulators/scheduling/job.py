"""Jobs and traces: what a cluster scheduler is asked to run.

A :class:`Job` is a gang: it needs all ``gpus`` at once and holds them until it finishes or is
preempted. ``work`` is its running time in seconds on a consolidated placement (all GPUs on as
few machines as possible); spread over more machines than that it runs ``spread_slowdown`` times
slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Job:
    """One training job of a trace."""

    id: str
    arrival: float
    gpus: int
    work: float
    model: str = ""
    iterations: int | None = None
    spread_slowdown: float | None = None  # None: use the simulation's default

    def __post_init__(self) -> None:
        if not (math.isfinite(self.arrival) and self.arrival >= 0):
            raise ValueError(f"job {self.id}: arrival must be a finite time >= 0, got {self.arrival}")
        if not isinstance(self.gpus, int) or self.gpus < 1:
            raise ValueError(f"job {self.id}: gpus must be an integer >= 1, got {self.gpus!r}")
        if not (math.isfinite(self.work) and self.work > 0):
            raise ValueError(f"job {self.id}: work (duration) must be finite and > 0 s, "
                             f"got {self.work}")
        if self.spread_slowdown is not None and not self.spread_slowdown >= 1:
            raise ValueError(f"job {self.id}: spread_slowdown must be >= 1, "
                             f"got {self.spread_slowdown}")

    @property
    def gpu_seconds(self) -> float:
        """GPU-time the job needs on a consolidated placement."""
        return self.gpus * self.work


@dataclass
class Trace:
    """An ordered list of jobs plus where they came from.

    ``notes`` records every adjustment a reader made (for example a default it had to assume);
    ``skipped`` lists ``(line, reason)`` for rows the caller asked the reader to skip — no row is
    ever dropped without appearing there.
    """

    name: str
    jobs: list[Job]
    source: str = ""
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self):
        return iter(self.jobs)

    def validate(self, max_gpus: int | None = None) -> Trace:
        """Check arrivals are sorted, ids unique and (if given) every job fits ``max_gpus``."""
        seen: set[str] = set()
        last = -math.inf
        for job in self.jobs:
            if job.id in seen:
                raise ValueError(f"trace {self.name!r}: duplicate job id {job.id!r}")
            seen.add(job.id)
            if job.arrival < last:
                raise ValueError(f"trace {self.name!r}: job {job.id} arrives at {job.arrival}, "
                                 f"before the previous job ({last}); arrivals must be sorted")
            last = job.arrival
            if max_gpus is not None and job.gpus > max_gpus:
                raise ValueError(f"trace {self.name!r}: job {job.id} needs {job.gpus} GPUs but the "
                                 f"cluster has only {max_gpus}")
        return self

    def head(self, n: int) -> Trace:
        """The first ``n`` jobs (a smaller trace for quick runs)."""
        return Trace(f"{self.name}[:{n}]", self.jobs[:n], self.source, list(self.notes))

    def summary(self) -> dict[str, float]:
        """Job count, span, and the mean/median duration and GPU count."""
        import numpy as np

        work = np.array([j.work for j in self.jobs])
        gpus = np.array([j.gpus for j in self.jobs])
        span = self.jobs[-1].arrival - self.jobs[0].arrival if self.jobs else 0.0
        return {"jobs": len(self.jobs), "span_h": span / 3600,
                "mean_duration_s": float(work.mean()), "median_duration_s": float(np.median(work)),
                "mean_gpus": float(gpus.mean()), "gpu_hours": float((work * gpus).sum() / 3600)}
