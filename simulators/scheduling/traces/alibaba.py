"""Alibaba PAI 2020 GPU trace (Weng et al., NSDI'22; github.com/alibaba/clusterdata).

The trace's ``pai_task_table.csv`` has no header; its columns (``pai_task_table.header``) are
``job_name,task_name,inst_num,status,start_time,end_time,plan_cpu,plan_mem,plan_gpu,gpu_type``,
with ``plan_gpu`` in percent of one GPU per instance and times in seconds. A job is the union of
its tasks: it arrives when its first task starts, runs until its last task ends, and asks for
``ceil(sum(inst_num * plan_gpu) / 100)`` whole GPUs. Tasks without GPUs are ignored (CPU-only
jobs are listed in ``Trace.skipped``), as are rows with an empty start or end time, which PAI
leaves for tasks that never ran — those jobs are skipped with that reason too.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ...data import file_stem, open_text
from ..job import Job, Trace
from ._rows import TraceError, build_trace, check_options, number

COLUMNS = ("job_name", "task_name", "inst_num", "status", "start_time", "end_time", "plan_cpu",
           "plan_mem", "plan_gpu", "gpu_type")


def read_pai(path: str | Path, *, on_error: str = "raise", sort: bool = True,
             max_gpus: int | None = None) -> Trace:
    """Jobs of a PAI task table (headerless CSV, or with the header line) as a :class:`Trace`."""
    check_options(on_error)
    path = Path(path)
    jobs: dict[str, dict] = {}
    with open_text(path) as handle:
        for line, values in enumerate(csv.reader(handle), start=1):
            if line == 1 and values[:2] == list(COLUMNS[:2]):
                continue
            if len(values) != len(COLUMNS):
                raise TraceError(f"{path}, line {line}: expected {len(COLUMNS)} columns "
                                 f"({','.join(COLUMNS)}), found {len(values)}")
            row = dict(zip(COLUMNS, values))
            job = jobs.setdefault(row["job_name"], {"line": line, "rows": []})
            job["rows"].append(row)

    def make(line: int, item: tuple[str, list[dict]]) -> Job:
        name, gpu_rows = item
        if any(not r["start_time"] or not r["end_time"] for r in gpu_rows):
            raise TraceError(f"job {name}: a GPU task has no start or end time (it never ran)")
        start = min(number(r, "start_time") for r in gpu_rows)
        end = max(number(r, "end_time") for r in gpu_rows)
        share = sum(number(r, "inst_num") * number(r, "plan_gpu") for r in gpu_rows)
        return Job(name, start, max(1, math.ceil(share / 100 - 1e-9)), end - start,
                   model=gpu_rows[0]["task_name"])

    items, cpu_only = [], []
    for name, job in sorted(jobs.items(), key=lambda pair: pair[1]["line"]):
        try:
            gpu_rows = [r for r in job["rows"] if r["plan_gpu"] and number(r, "plan_gpu") > 0]
        except TraceError as error:
            raise TraceError(f"{path}, job {name}: {error}") from None
        if gpu_rows:
            items.append((job["line"], (name, gpu_rows)))
        else:
            cpu_only.append((job["line"], f"job {name} is CPU-only (no task with plan_gpu > 0)"))
    trace = build_trace(file_stem(path), path, items, make, on_error=on_error, sort=sort, max_gpus=max_gpus)
    if cpu_only:
        trace.skipped = sorted(trace.skipped + cpu_only)
        trace.notes.append(f"{len(cpu_only)} CPU-only jobs are listed in Trace.skipped")
    return trace
