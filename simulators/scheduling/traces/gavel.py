"""Gavel's job traces (Narayanan et al., OSDI'20; github.com/stanford-futuredata/gavel).

Tab-separated lines, no header. Gavel's Philly-derived traces have 7 fields — job type, command,
step-count flag, needs-data-dir flag, total steps, arrival time (s), scale factor (GPUs) — and its
physical-cluster traces 10 — job type, command, working directory, step-count flag,
needs-data-dir flag, total steps, scale factor, priority weight, SLO, arrival time.

A job's duration is its steps divided by its measured throughput (steps/s) on ``gpu_type`` in
Gavel's ``simulation_throughputs.json``, alone on consolidated GPUs. Where Gavel measured no
throughput at that scale factor the reader scales the largest measured one linearly (optimistic)
and counts the jobs so treated in ``Trace.notes``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...data import file_stem, open_text, read_text
from ..job import Job, Trace
from ._rows import TraceError, build_trace, number

FIELDS = {7: ("job_type", "command", "steps_flag", "needs_data_dir", "total_steps", "arrival_time",
              "scale_factor"),
          10: ("job_type", "command", "working_directory", "steps_flag", "needs_data_dir",
               "total_steps", "scale_factor", "priority_weight", "slo", "arrival_time")}


def load_throughputs(path: str | Path, gpu_type: str = "v100") -> dict[tuple[str, int], float]:
    """``(job type, scale factor) -> steps/s`` for isolated jobs on ``gpu_type``."""
    table = json.loads(read_text(path))
    if gpu_type not in table:
        raise ValueError(f"gpu_type {gpu_type!r} not in {path}; expected one of {sorted(table)}")
    out = {}
    for key, value in table[gpu_type].items():
        job_type, scale = key.strip("()").rsplit(",", 1)
        out[(job_type.strip().strip("'\""), int(scale))] = float(value["null"])
    return out


def read_gavel(path: str | Path, throughputs: dict[tuple[str, int], float], *,
               on_error: str = "raise", sort: bool = False, max_gpus: int | None = None) -> Trace:
    """A Gavel ``.trace`` file as a :class:`Trace`, durations from ``throughputs``."""
    path = Path(path)
    best_scale: dict[str, int] = {}
    for job_type, scale in throughputs:
        best_scale[job_type] = max(best_scale.get(job_type, 0), scale)
    extrapolated = 0

    def make(line: int, text: str) -> Job:
        nonlocal extrapolated
        parts = text.rstrip("\n").split("\t")
        if len(parts) not in FIELDS:
            raise TraceError(f"expected 7 or 10 tab-separated fields, found {len(parts)}")
        row = dict(zip(FIELDS[len(parts)], parts))
        job_type, gpus = row["job_type"], number(row, "scale_factor", integer=True, minimum=1)
        if job_type not in best_scale:
            raise TraceError(f"job type {job_type!r} has no measured throughput")
        rate = throughputs.get((job_type, gpus))
        if rate is None:
            scale = max(s for s in (1, 2, 4, 8, best_scale[job_type])
                        if s <= gpus and (job_type, s) in throughputs)
            rate = throughputs[(job_type, scale)] * gpus / scale
            extrapolated += 1
        steps = number(row, "total_steps", integer=True, minimum=1)
        return Job(f"{file_stem(path)}-{line}", number(row, "arrival_time"), gpus, steps / rate,
                   model=job_type, iterations=steps)

    with open_text(path) as handle:
        lines = [(n, text) for n, text in enumerate(handle, start=1) if text.strip()]
    trace = build_trace(file_stem(path), path, lines, make, on_error=on_error, sort=sort, max_gpus=max_gpus)
    if extrapolated:
        trace.notes.append(f"{extrapolated} jobs ran at a scale factor Gavel did not measure; "
                           "their throughput was scaled linearly from the largest measured one")
    return trace
