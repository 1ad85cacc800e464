"""``mlsys sim schedule``: replay a job trace on a cluster under one or more policies.

Examples::

    mlsys sim schedule --policy fifo,srtf,las                      # synthetic Philly-like trace
    mlsys sim schedule --trace tiresias/60_job.csv --cluster tiresias/n32g4.csv --policy las \\
        --chrome-trace las.json
"""

from __future__ import annotations

import argparse
import sys
import time

from mlsys.bench.report import emit

from ..data import resolve
from .cluster import ClusterSpec
from .metrics import summarize
from .placement import PLACEMENTS
from .policies import POLICIES, make_policy
from .simulator import Simulation
from .traces import FORMATS, TraceError, read_trace, synthetic_trace
from .traces.tiresias import read_tiresias_cluster

COLUMNS = ("policy", "jobs", "avg_jct", "median_jct", "p99_jct", "avg_queue", "makespan",
           "utilization", "max_rho", "jain", "preemptions", "sim_s")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlsys sim schedule", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace", default="synthetic",
                   help="trace file, a shipped trace such as tiresias/60_job.csv, or 'synthetic' "
                   "(Philly-fitted generator; default)")
    p.add_argument("--format", choices=FORMATS, help="trace format (guessed when omitted)")
    p.add_argument("--jobs", type=int, help="use only the first N jobs (synthetic: generate N, default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic trace")
    p.add_argument("--jobs-per-hour", type=float, default=None, help="arrival rate of the synthetic trace")
    p.add_argument("--policy", default="fifo",
                   help=f"comma-separated policies from {','.join(POLICIES)} (default fifo)")
    p.add_argument("--cluster", help="Tiresias cluster-spec CSV (num_switch,num_node_p_switch,...): "
                   "a file or a shipped spec such as tiresias/n32g4.csv")
    p.add_argument("--gpus", type=int, default=64, help="cluster size when --cluster is not given")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--placement", choices=sorted(PLACEMENTS), default="consolidated")
    p.add_argument("--spread-slowdown", type=float, default=1.25)
    p.add_argument("--restart-cost", type=float, default=30.0, help="seconds to resume a preempted job")
    p.add_argument("--chrome-trace", help="write the (last policy's) cluster timeline as Chrome-trace JSON")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        spec = (read_tiresias_cluster(resolve(args.cluster)) if args.cluster
                else ClusterSpec.with_gpus(args.gpus, args.gpus_per_node))
        if args.trace == "synthetic":
            rate = {} if args.jobs_per_hour is None else {"jobs_per_hour": args.jobs_per_hour}
            trace = synthetic_trace(args.jobs or 1000, seed=args.seed, max_gpus=spec.gpus, **rate)
        else:
            trace = read_trace(args.trace, args.format)
            if args.jobs:
                trace = trace.head(args.jobs)
        policies = [make_policy(name.strip()) for name in args.policy.split(",")]
        rows, result = [], None
        for policy in policies:
            sim = Simulation(trace, spec, policy, placement=args.placement,
                             spread_slowdown=args.spread_slowdown, restart_cost=args.restart_cost)
            start = time.perf_counter()
            result = sim.run()
            elapsed = time.perf_counter() - start
            result.check_conservation()
            rows.append({**summarize(result), "sim_s": elapsed})
    except (ValueError, OSError, TraceError) as error:
        print(f"mlsys sim schedule: error: {error}", file=sys.stderr)
        return 2
    notes = [f"trace {trace.name}: {len(trace)} jobs; cluster {spec.switches}x{spec.nodes_per_switch}"
             f"x{spec.gpus_per_node} = {spec.gpus} GPUs; placement {args.placement}; times in s",
             *trace.notes]
    if args.chrome_trace:
        result.to_recorder().save_chrome_trace(args.chrome_trace)
        notes.append(f"Chrome trace of {result.policy} written to {args.chrome_trace}")
    print(emit(rows, as_json=args.json, title="Cluster scheduling", columns=COLUMNS, notes=notes))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
