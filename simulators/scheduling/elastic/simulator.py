"""The elastic simulator: scheduling rounds over jobs whose GPUs and batch sizes change.

Every ``interval`` seconds (60 s, as in Pollux) each job that holds GPUs advances at its goodput
(:class:`~.job.ElasticJob`), then the policy reallocates GPUs among the jobs that have arrived and
not finished; a job whose GPUs change pays ``restart`` seconds (30 s) before progressing again.
Rounds are one SimPy process. The cluster is the Pollux artifact's: 16 nodes of 4 GPUs.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from ...data import data_path, open_text
from .application import GPUS_PER_NODE, load_application
from .job import ElasticJob
from .policies import RESTART, ElasticPolicy


@dataclass
class ElasticResult:
    """Per job: name, application, arrival, finish, restarts, GPU-seconds; per round: GPUs held."""

    policy: str
    jobs: list[ElasticJob]
    rounds: np.ndarray       # round times
    busy: np.ndarray         # GPUs allocated after each round's decision
    gpus: int

    @property
    def jct(self) -> np.ndarray:
        return np.array([job.finish - job.arrival for job in self.jobs])

    @property
    def restarts(self) -> np.ndarray:
        return np.array([job.restarts for job in self.jobs])

    def utilization(self) -> float:
        """Mean fraction of GPUs allocated over the rounds."""
        return float(self.busy.mean() / self.gpus) if len(self.busy) else 0.0

    def summary(self) -> dict[str, float | str | int]:
        jct = self.jct
        return {"policy": self.policy, "jobs": len(jct), "avg_jct": float(jct.mean()),
                "median_jct": float(np.median(jct)), "p99_jct": float(np.percentile(jct, 99)),
                "makespan": float(max(j.finish for j in self.jobs) - min(j.arrival for j in self.jobs)),
                "utilization": self.utilization(), "restarts": int(self.restarts.sum())}


def read_workload(number: int, policy: ElasticPolicy) -> list[ElasticJob]:
    """Workload ``number`` (1-8) of the Pollux artifact, as ``policy`` receives it: Tiresias
    gets each job's tuned GPUs and batch size, Optimus its batch size, Pollux neither; ``ncf``
    jobs stay on one GPU under both elastic policies (Pollux: at batch 32,768), as in the
    artifact."""
    if number not in range(1, 9):
        raise ValueError(f"the Pollux artifact has workloads 1 to 8, got {number}")
    with open_text(data_path(f"traces/pollux_philly/workloads/workload-{number}.csv")) as handle:
        rows = list(csv.DictReader(handle))
    jobs = []
    for row in rows:
        app = load_application(row["application"])
        gpus = int(row["num_replicas"]) if policy.name == "tiresias" else None
        batch = int(row["batch_size"]) if policy.name in ("tiresias", "optimus") else None
        most = None
        if app.name == "ncf" and policy.name != "tiresias":
            batch, most = batch or 32768, 1
        jobs.append(ElasticJob(row["name"], app, float(row["time"]), gpus, batch, most))
    return jobs


def assign_nodes(counts: dict[ElasticJob, int], nodes: int, pack: bool) -> dict[ElasticJob, tuple[int, ...]]:
    """Nodes for each job's GPU count. A job whose count is unchanged keeps its nodes; the others
    are placed largest first, on the fullest node that fits when ``pack`` (one node if it can),
    else on the emptiest nodes first (as the artifact's Optimus and Tiresias do)."""
    free = [GPUS_PER_NODE] * nodes
    placed: dict[ElasticJob, tuple[int, ...]] = {}
    for job, count in counts.items():
        if count and count == job.replicas:
            placed[job] = job.nodes
            for node in job.nodes:
                free[node] -= 1
    for job, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].arrival)):
        if job in placed or not count:
            continue
        taken: list[int] = []
        fits = [n for n in range(nodes) if free[n] >= count]
        if pack and count <= GPUS_PER_NODE and fits:
            node = min(fits, key=lambda n: (free[n], n))
            taken, free[node] = [node] * count, free[node] - count
        while len(taken) < count:
            node = max(range(nodes), key=lambda n: (free[n], -n))
            take = min(free[node], count - len(taken))
            if take <= 0:
                raise AssertionError("more GPUs allocated than the cluster has")
            taken += [node] * take
            free[node] -= take
        placed[job] = tuple(taken)
    return placed


def replay(jobs: Sequence[ElasticJob], policy: ElasticPolicy, *, nodes: int = 16,
           interval: float = 60.0, restart: float = RESTART) -> ElasticResult:
    """Run ``jobs`` to completion under ``policy``; every job must fit the cluster."""
    gpus = nodes * GPUS_PER_NODE
    if interval <= 0 or restart < 0:
        raise ValueError(f"interval must be > 0 s and restart >= 0 s, got {interval}, {restart}")
    for job in jobs:
        if (job.gpus or 1) > gpus:
            raise ValueError(f"job {job.name} needs {job.gpus} GPUs; the cluster has {gpus}")
    env = simpy.Environment()
    rounds, busy = [], []

    def run():
        now = 0.0
        while any(job.finish is None for job in jobs):
            for job in jobs:
                job.advance(now, interval)
            yield env.timeout(interval)
            now = env.now
            active = [j for j in jobs if j.arrival <= now and j.finish is None]
            counts = policy.allocate(active, gpus, now) if active else {}
            placed = assign_nodes(counts, nodes, policy.pack)
            for job in jobs:
                target = placed.get(job, ())
                if target != job.nodes:
                    job.reallocate(target, now, restart)
            rounds.append(now)
            busy.append(sum(counts.values()))

    env.process(run())
    env.run()
    return ElasticResult(policy.name, list(jobs), np.array(rounds), np.array(busy), gpus)
