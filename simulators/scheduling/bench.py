"""Scheduling scenarios for ``mlsys bench sim``: a Philly-shaped trace replayed under each policy.

The full run replays 100,000 synthetic jobs (Philly-fitted, about 0.9 offered load) on 512 GPUs;
``quick`` replays 2,000. FIFO is the baseline row: the cheapest policy, one event per arrival and
per completion.
"""

from __future__ import annotations

import time
from typing import Any

from .cluster import ClusterSpec
from .simulator import simulate
from .traces import synthetic_trace

POLICIES = ("fifo", "sjf", "srtf", "las", "themis", "easy", "gittins", "gandiva")


def scenarios(quick: bool = False, policies: tuple[str, ...] = POLICIES) -> list[dict[str, Any]]:
    """One row per policy: events, simulated time, wall time, events per second."""
    n = 2_000 if quick else 100_000
    spec = ClusterSpec.with_gpus(512, gpus_per_node=8)
    trace = synthetic_trace(n, jobs_per_hour=30, max_gpus=spec.gpus, seed=0)
    rows = []
    for policy in policies:
        start = time.perf_counter()
        result = simulate(trace, spec, policy)
        wall = time.perf_counter() - start
        rows.append({"family": "scheduling", "scenario": f"{policy} {n} jobs {spec.gpus} gpus",
                     "events": result.events, "simulated_s": result.makespan, "wall_s": wall,
                     "events_per_s": result.events / wall})
    return rows
