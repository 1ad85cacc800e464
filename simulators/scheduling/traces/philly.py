"""Microsoft Philly jobs (Jeon et al., ATC'19) in the job-level CSV of the Pollux artifact.

Columns ``timestamp,duration,num_gpus,gpu_time,cluster``: submission time (``YYYY-MM-DD
HH:MM:SS``), run time in seconds, GPUs, and the virtual cluster. The file is not in arrival order,
so ``sort`` defaults to ``True``; arrivals are shifted so the first job arrives at 0. Philly also
logs jobs that ran for 0 s (failed at launch); they are invalid jobs here, so read with
``on_error="skip"`` to list them in ``Trace.skipped``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from ..job import Job, Trace
from ._rows import TraceError, build_trace, number, open_csv


def read_philly(path: str | Path, *, cluster: str | None = None, on_error: str = "raise",
                sort: bool = True, max_gpus: int | None = None) -> Trace:
    """The Philly CSV as a :class:`Trace`; ``cluster`` keeps one virtual cluster's jobs."""
    path, rows = open_csv(path, ("timestamp", "duration", "num_gpus"))
    if cluster is not None:
        rows = ((line, row) for line, row in rows if row.get("cluster") == cluster)

    def make(line: int, row: dict) -> Job:
        try:
            when = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=timezone.utc).timestamp()
        except (TypeError, ValueError):
            raise TraceError(f"column 'timestamp': expected YYYY-MM-DD HH:MM:SS, "
                             f"got {row['timestamp']!r}") from None
        return Job(f"philly-{line}", when, number(row, "num_gpus", integer=True),
                   number(row, "duration"), model=row.get("cluster") or "")

    name = f"philly-{cluster}" if cluster else "philly"
    trace = build_trace(name, path, rows, make, on_error=on_error, sort=sort, max_gpus=max_gpus)
    return shift_to_zero(trace)


def shift_to_zero(trace: Trace) -> Trace:
    """The same jobs with arrivals measured from the first one."""
    t0 = trace.jobs[0].arrival
    if t0:
        trace.jobs = [replace(j, arrival=j.arrival - t0) for j in trace.jobs]
        trace.notes.append(f"arrivals shifted by {-t0:g} s so the first job arrives at 0")
    return trace
