"""The Tiresias simulator's formats (Gu et al., NSDI'19; github.com/SymbioticLab/Tiresias).

Jobs: ``job_id,num_gpu,submit_time,iterations,model_name,duration,interval`` (seconds).
Clusters: ``num_switch,num_node_p_switch,num_gpu_p_node,num_cpu_p_node,mem_p_node``.
Service samples (``yarn-gput*.csv``, for the Gittins index): one column ``duration`` (GPU-seconds).
Published results (``60_job_tiresias_sim.csv``): that simulator's per-job outcomes, see its SOURCE.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data import file_stem
from ..cluster import ClusterSpec
from ..job import Job, Trace
from ._rows import TraceError, build_trace, number, open_csv

JOB_COLUMNS = ("job_id", "num_gpu", "submit_time", "duration")


def read_tiresias(path: str | Path, *, on_error: str = "raise", sort: bool = False,
                  max_gpus: int | None = None) -> Trace:
    """A Tiresias job CSV as a :class:`Trace` (``iterations`` and ``model_name`` kept if present)."""
    path, rows = open_csv(path, JOB_COLUMNS)

    def make(line: int, row: dict) -> Job:
        iterations = row.get("iterations")
        return Job(row["job_id"], number(row, "submit_time"), number(row, "num_gpu", integer=True, minimum=1),
                   number(row, "duration"), model=row.get("model_name") or "",
                   iterations=int(float(iterations)) if iterations else None)

    return build_trace(file_stem(path), path, rows, make, on_error=on_error, sort=sort, max_gpus=max_gpus)


def read_tiresias_cluster(path: str | Path) -> ClusterSpec:
    """A Tiresias cluster-spec CSV (one row) as a :class:`ClusterSpec`."""
    path, rows = open_csv(path, ("num_switch", "num_node_p_switch", "num_gpu_p_node"))
    rows = list(rows)
    if len(rows) != 1:
        raise TraceError(f"{path}: expected exactly one cluster row, found {len(rows)}")
    line, row = rows[0]
    try:
        return ClusterSpec(*(number(row, c, integer=True, minimum=1)
                             for c in ("num_switch", "num_node_p_switch", "num_gpu_p_node")))
    except TraceError as error:
        raise TraceError(f"{path}, line {line}: {error}") from None


def read_service_samples(path: str | Path) -> np.ndarray:
    """A one-column CSV of job service times (``duration``, GPU-seconds) as an array."""
    path, rows = open_csv(path, ("duration",))
    values = []
    for line, row in rows:
        try:
            values.append(number(row, "duration", minimum=None))
        except TraceError as error:
            raise TraceError(f"{path}, line {line}: {error}") from None
        if not values[-1] > 0:
            raise TraceError(f"{path}, line {line}: column 'duration': expected a service time "
                             f"> 0 GPU-seconds, got {row['duration']!r}")
    if not values:
        raise TraceError(f"{path}: no service samples")
    return np.array(values)


Runs = dict[tuple[str, str, tuple[float, ...]], dict[str, tuple[float, int]]]


def read_published_results(path: str | Path) -> Runs:
    """Tiresias's simulator's per-job results: ``(cluster spec, schedule, queue thresholds) ->
    {job id: (end time, preemptions)}`` (thresholds empty for schedules without queues)."""
    path, rows = open_csv(path, ("cluster_spec", "schedule", "queue_limit", "job_id", "end_time",
                                 "preempt"))
    runs: Runs = {}
    for line, row in rows:
        try:
            limits = tuple(float(x) for x in row["queue_limit"].split(";") if x)
            end, preempt = number(row, "end_time"), number(row, "preempt", integer=True)
        except (TraceError, ValueError) as error:
            raise TraceError(f"{path}, line {line}: {error}") from None
        runs.setdefault((row["cluster_spec"], row["schedule"], limits), {})[row["job_id"]] = (end, preempt)
    return runs
