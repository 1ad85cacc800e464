"""A heterogeneous cluster (K80, P100, V100) under Gavel's policies, as a fluid simulation.

Jobs come from a Gavel trace (model, scale factor, steps, arrival). At every arrival and
completion the policy recomputes the allocation ``X`` (time fractions per GPU type); in between,
each job advances at ``sum_k T[j, k] X[j, k]`` steps/s, ``T`` from Gavel's measured
``simulation_throughputs.json``. This is Gavel's simulator with its round-based mechanism taken
as ideal (its ``--ideal`` option): a job receives exactly its time fractions, with no rounding to
360-second rounds and no switching costs. One SimPy process steps from event to event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simpy

from ...data import data_path, read_text
from ..job import Trace
from .policies import equal_share

GPU_TYPES = ("k80", "p100", "v100")


def throughput_table(path: str | Path | None = None) -> dict[str, dict[tuple[str, int], float]]:
    """``{gpu type: {(model, scale factor): steps/s}}`` for isolated jobs (Gavel's table)."""
    path = path or data_path("traces/gavel_philly/simulation_throughputs.json")
    table = json.loads(read_text(path))
    out = {}
    for gpu in GPU_TYPES:
        out[gpu] = {}
        for key, value in table[gpu].items():
            model, scale = key.strip("()").rsplit(",", 1)
            out[gpu][(model.strip().strip("'\""), int(scale))] = float(value["null"])
    return out


def rate_matrix(trace: Trace, table: dict[str, dict[tuple[str, int], float]]) -> np.ndarray:
    """Steps/s of each job on each GPU type (a scale factor Gavel did not measure: scaled
    linearly from the largest measured one, as :func:`~..traces.gavel.read_gavel` does)."""
    rates = np.zeros((len(trace), len(GPU_TYPES)))
    for k, gpu in enumerate(GPU_TYPES):
        measured = table[gpu]
        for j, job in enumerate(trace):
            rate = measured.get((job.model, job.gpus))
            if rate is None:
                scales = [s for (m, s) in measured if m == job.model and s <= job.gpus]
                if not scales:
                    raise ValueError(f"no {gpu} throughput for {job.model!r}")
                rate = measured[(job.model, max(scales))] * job.gpus / max(scales)
            rates[j, k] = rate
    return rates


@dataclass
class HeteroResult:
    policy: str
    arrival: np.ndarray
    finish: np.ndarray
    gpu_time: np.ndarray     # GPU-seconds per type used by all jobs together
    events: int

    @property
    def jct(self) -> np.ndarray:
        return self.finish - self.arrival

    @property
    def makespan(self) -> float:
        return float(self.finish.max() - self.arrival.min())


def replay_hetero(trace: Trace, counts: dict[str, int], policy, *,
                  table: dict[str, dict[tuple[str, int], float]] | None = None) -> HeteroResult:
    """Run every job of ``trace`` to completion on ``counts`` GPUs per type under ``policy``."""
    if set(counts) != set(GPU_TYPES) or any(int(n) < 0 for n in counts.values()):
        raise ValueError(f"counts must give GPUs >= 0 for each of {GPU_TYPES}, got {counts}")
    n = np.array([float(counts[g]) for g in GPU_TYPES])
    rates = rate_matrix(trace, table or throughput_table())
    scale = np.array([float(job.gpus) for job in trace])
    for job, s in zip(trace, scale):
        if not (n >= s).any():
            raise ValueError(f"job {job.id} needs {int(s)} GPUs of one type; the largest type has "
                             f"{int(n.max())}")
    steps = np.array([float(job.iterations or job.work * rates[j, -1]) for j, job in enumerate(trace)])
    arrival = np.array([job.arrival for job in trace])
    remaining, finish = steps.copy(), np.full(len(trace), np.nan)
    isolated = np.zeros(len(trace))
    gpu_time = np.zeros(len(GPU_TYPES))
    env = simpy.Environment()
    events = 0

    def run():
        nonlocal events
        arrived = 0
        now = 0.0
        while np.isnan(finish).any():
            while arrived < len(trace) and arrival[arrived] <= now:
                arrived += 1
            active = np.flatnonzero(np.isnan(finish[:arrived]))
            speed = np.zeros(len(trace))
            x = None
            if len(active):
                x = policy.allocate(rates[active], scale[active], n, remaining=remaining[active],
                                    age=now - arrival[active], isolated_time=isolated[active])
                speed[active] = (rates[active] * x).sum(axis=1)
            events += 1
            horizon = arrival[arrived] - now if arrived < len(trace) else np.inf
            moving = active[speed[active] > 0]
            done_in = remaining[moving] / speed[moving]
            step = min(horizon, done_in.min() if len(moving) else np.inf)
            if not np.isfinite(step):
                raise RuntimeError(f"policy {policy.name!r} leaves {len(active)} jobs without "
                                   "progress and nothing else will happen")
            if step > 0:
                yield env.timeout(step)
            if len(active):
                iso = (rates[active] * equal_share(scale[active], n)).sum(axis=1)
                isolated[active] += speed[active] * step / iso
                gpu_time[:] += (x * scale[active, None]).sum(axis=0) * step
                remaining[active] -= speed[active] * step
            now += step
            ended = active[remaining[active] <= 1e-9 * steps[active]]
            remaining[ended], finish[ended] = 0.0, now

    env.process(run())
    env.run()
    return HeteroResult(policy.name, arrival, finish, gpu_time, events)


def compare(trace: Trace, counts: dict[str, int], policies: Sequence) -> dict[str, HeteroResult]:
    """Each policy's result on the same trace and cluster (the throughput table read once)."""
    table = throughput_table()
    return {p.name: replay_hetero(trace, counts, p, table=table) for p in policies}
