"""Stragglers from a real cluster: per-worker mini-batch times of the Alibaba PAI trace.

``traces/alibaba_pai2020/mini_batch_time/job_<k>_norm.csv`` holds, for four distributed jobs of
10 workers, each worker's time per mini-batch, iteration by iteration, normalised to 0-1000
(Xiao et al., AntMan, OSDI 2020; see its SOURCE note). Job 1 has one straggler, jobs 3 and 4
several. :func:`minibatch_times` reads them; scaled to seconds they drive the real parameter
server's injected delays (:func:`mlsys.comm.ps.sharded_parameter_server`) and the
simulated workers' iteration times (:class:`.parameter_server.ParameterServerConfig`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence

import numpy as np

from simulators.data import data_path, open_text

__all__ = ["JOBS", "minibatch_times"]

JOBS = (1, 2, 3, 4)


def minibatch_times(job: int = 1, workers: Sequence[int] | None = None, iterations: int | None = None,
                    seconds_per_unit: float = 1e-3) -> np.ndarray:
    """Per-worker mini-batch times of PAI job ``job`` in iteration order, as an array
    ``(workers, iterations)`` of ``seconds_per_unit`` times the normalised time (0-1000).

    ``workers`` picks workers (default all ten); ``iterations`` keeps the first that many (every
    picked worker must have them; default: as many as all picked workers have).
    """
    if job not in JOBS:
        raise ValueError(f"minibatch_times: job must be one of {JOBS}, got {job!r}")
    if not seconds_per_unit > 0:
        raise ValueError(f"minibatch_times: seconds_per_unit must be positive, got {seconds_per_unit!r}")
    per_worker: dict[int, list[tuple[int, float]]] = {}
    with open_text(data_path(f"traces/alibaba_pai2020/mini_batch_time/job_{job}_norm.csv")) as f:
        for row in csv.DictReader(f):
            per_worker.setdefault(int(row["worker"]), []).append((int(row["time"]),
                                                                  float(row["batch_time_norm"])))
    picked = sorted(per_worker) if workers is None else list(workers)
    unknown = [w for w in picked if w not in per_worker]
    if unknown:
        raise ValueError(f"minibatch_times: job {job} has workers {sorted(per_worker)}, not {unknown}")
    series = [[t for _, t in sorted(per_worker[w])] for w in picked]
    available = min(len(s) for s in series)
    count = available if iterations is None else iterations
    if not isinstance(count, int) or not 1 <= count <= available:
        raise ValueError(f"minibatch_times: iterations must be an integer in [1, {available}] for "
                         f"these workers of job {job}, got {iterations!r}")
    return seconds_per_unit * np.array([s[:count] for s in series])
