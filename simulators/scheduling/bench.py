"""Scheduling scenarios for ``mlsys bench sim``: a Philly-shaped trace replayed under each policy.

The full run replays 100,000 synthetic jobs (Philly-fitted, about 0.9 offered load) on 512 GPUs;
``quick`` replays 2,000. FIFO is the baseline row: the cheapest policy, one event per arrival and
per completion. ``python -m simulators.scheduling.bench --policy gittins`` times one policy
(the same table as ``mlsys bench sim --only scheduling``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from mlsys.bench.report import emit

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


def main(argv: list[str]) -> int:
    """Time some policies only: ``--policy NAME`` (repeatable), ``--quick``, ``--json``."""
    p = argparse.ArgumentParser(prog="python -m simulators.scheduling.bench", description=__doc__)
    p.add_argument("--policy", action="append", choices=POLICIES, help="policy to time (repeatable)")
    p.add_argument("--quick", action="store_true", help="2,000 jobs instead of 100,000")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    rows = scenarios(quick=args.quick, policies=tuple(args.policy or POLICIES))
    print(emit(rows, as_json=args.json, title="Simulator performance"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(__import__("sys").argv[1:]))
