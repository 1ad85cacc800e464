"""Scheduling scenarios for ``mlsys bench sim``: a Philly-shaped trace replayed under each policy,
and the Pollux artifact's workloads replayed under Pollux, Optimus and Tiresias.

The full run replays 100,000 synthetic jobs (Philly-fitted, about 0.9 offered load) on 512 GPUs;
``quick`` replays 2,000. FIFO is the baseline row: the cheapest policy, one event per arrival and
per completion. :func:`pollux_rows` replays the eight 160-job workloads of the Pollux artifact
(``quick``: workload 3) per elastic policy and prints each mean JCT next to the artifact's own.
``python -m simulators.scheduling.bench --policy gittins`` times one policy.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from mlsys.bench.report import emit

from . import elastic
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


def pollux_rows(quick: bool = False) -> list[dict[str, Any]]:
    """Per elastic policy: mean JCT over the Pollux workloads, the artifact's, the error, time."""
    workloads = (3,) if quick else tuple(range(1, 9))
    rows = []
    for name, cls in elastic.POLICIES.items():
        start = time.perf_counter()
        ours, theirs, rounds = [], [], 0
        for number in workloads:
            policy = cls()
            result = elastic.replay(elastic.read_workload(number, policy), policy)
            ours.append(result.jct.mean())
            theirs.append(np.mean(list(elastic.artifact_jcts(name, number).values())))
            rounds += len(result.rounds)
        mean, reference = float(np.mean(ours)), float(np.mean(theirs))
        rows.append({"policy": name, "workloads": len(workloads), "avg_jct_s": mean,
                     "artifact_avg_jct_s": reference, "error": mean / reference - 1,
                     "worst_workload_error": float(np.max(np.abs(np.array(ours) / theirs - 1))),
                     "rounds": rounds, "wall_s": time.perf_counter() - start})
    return rows


def main(argv: list[str]) -> int:
    """Time some policies only: ``--policy NAME`` (repeatable), ``--quick``, ``--json``."""
    p = argparse.ArgumentParser(prog="python -m simulators.scheduling.bench", description=__doc__)
    p.add_argument("--policy", action="append", choices=POLICIES, help="policy to time (repeatable)")
    p.add_argument("--quick", action="store_true", help="2,000 jobs instead of 100,000")
    p.add_argument("--pollux", action="store_true",
                   help="also replay the Pollux workloads per elastic policy")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    rows = scenarios(quick=args.quick, policies=tuple(args.policy or POLICIES))
    print(emit(rows, as_json=args.json, title="Simulator performance"))
    if args.pollux:
        print(emit(pollux_rows(args.quick), as_json=args.json, title=POLLUX_TITLE, notes=POLLUX_NOTES))
    return 0


POLLUX_TITLE = "Pollux artifact workloads replayed per policy (64 GPUs, 60 s rounds)"
POLLUX_NOTES = ("artifact: its own simulator's mean JCTs, traces/pollux_philly/results "
                "(Pollux OSDI'21, Figure 8a raw results); tolerance 25%, same ordering",)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(__import__("sys").argv[1:]))
