"""SenseTime Helios job logs (Hu et al., SC'21; github.com/S-Lab-System-Group/HeliosData).

``cluster_log.csv`` of each cluster (Venus, Earth, Saturn, Uranus) has one row per job with at
least ``job_id, gpu_num, submit_time, duration`` (plus ``vc``, ``state``, start and end times).
``submit_time`` is a date-time or seconds. Helios logs CPU-only jobs too (``gpu_num`` 0); they are
not GPU jobs, so the reader lists them in ``Trace.skipped`` rather than failing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ...data import file_stem
from ..job import Job, Trace
from ._rows import TraceError, build_trace, check_options, number, open_csv
from .philly import shift_to_zero


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise TraceError(f"column 'submit_time': expected seconds or a date-time, got {value!r}") from None


def read_helios(path: str | Path, *, on_error: str = "raise", sort: bool = False,
                max_gpus: int | None = None) -> Trace:
    """A Helios ``cluster_log.csv`` as a :class:`Trace` (arrivals measured from the first job)."""
    check_options(on_error)
    path, rows = open_csv(path, ("job_id", "gpu_num", "submit_time", "duration"))
    cpu_only: list[tuple[int, str]] = []

    def gpu_rows():
        for line, row in rows:
            if row["gpu_num"].strip() in ("0", "0.0"):
                cpu_only.append((line, f"job {row['job_id']} is CPU-only (gpu_num 0)"))
            else:
                yield line, row

    def make(line: int, row: dict) -> Job:
        return Job(row["job_id"], _seconds(row["submit_time"]),
                   number(row, "gpu_num", integer=True, minimum=1), number(row, "duration"),
                   model=row.get("vc") or "")

    trace = build_trace(file_stem(path), path, gpu_rows(), make, on_error=on_error, sort=sort,
                        max_gpus=max_gpus)
    if cpu_only:
        trace.skipped = sorted(trace.skipped + cpu_only)
        trace.notes.append(f"{len(cpu_only)} CPU-only jobs are listed in Trace.skipped")
    return shift_to_zero(trace)
