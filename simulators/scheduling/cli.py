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

from mlsys import cliargs
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


MAX_GPUS = 1 << 20  # the simulator keeps per-GPU state; a million GPUs is beyond any cluster


def _parser() -> cliargs.ArgumentParser:
    p = cliargs.ArgumentParser(prog="mlsys sim schedule", description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace", default="synthetic",
                   help="trace file, a shipped trace such as tiresias/60_job.csv, or 'synthetic' "
                   "(Philly-fitted generator; default)")
    p.add_argument("--format", choices=FORMATS, help="trace format (guessed when omitted)")
    p.add_argument("--jobs", type=cliargs.int_range(1, 10_000_000),
                   help="use only the first N jobs (synthetic: generate N, default 1000)")
    p.add_argument("--seed", type=cliargs.int_range(0, 2**63 - 1), default=0,
                   help="seed of the synthetic trace")
    p.add_argument("--jobs-per-hour", type=cliargs.positive_float, default=None,
                   help="arrival rate of the synthetic trace")
    p.add_argument("--policy", type=cliargs.comma_list(str), default=["fifo"],
                   help=f"comma-separated policies from {','.join(POLICIES)} (default fifo)")
    p.add_argument("--cluster", help="Tiresias cluster-spec CSV (num_switch,num_node_p_switch,...): "
                   "a file or a shipped spec such as tiresias/n32g4.csv")
    p.add_argument("--gpus", type=cliargs.int_range(1, MAX_GPUS), default=None,
                   help="cluster size when --cluster is not given (default 64; a multiple of "
                   "--gpus-per-node)")
    p.add_argument("--gpus-per-node", type=cliargs.int_range(1, 1024), default=None,
                   help="GPUs per node when --cluster is not given (default 8)")
    p.add_argument("--placement", choices=sorted(PLACEMENTS), default="consolidated")
    p.add_argument("--spread-slowdown", type=cliargs.float_range(1.0), default=1.25,
                   help="how many times slower a job spanning nodes runs (>= 1; default 1.25)")
    p.add_argument("--restart-cost", type=cliargs.non_negative_float, default=30.0,
                   help="seconds to resume a preempted job")
    p.add_argument("--chrome-trace", type=cliargs.output_file,
                   help="write the (last policy's) cluster timeline as Chrome-trace JSON")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _cluster(p: cliargs.ArgumentParser, args: argparse.Namespace) -> ClusterSpec:
    """The cluster the options describe, exactly: never rounded to another size."""
    if args.cluster:
        if args.gpus is not None or args.gpus_per_node is not None:
            p.error("argument --cluster: give either --cluster or --gpus/--gpus-per-node, not both")
        return read_tiresias_cluster(resolve(args.cluster))
    gpus = 64 if args.gpus is None else args.gpus
    per_node = 8 if args.gpus_per_node is None else args.gpus_per_node
    if gpus % per_node:
        p.error(f"argument --gpus: expected a multiple of --gpus-per-node ({per_node}: whole "
                f"nodes), got {gpus}")
    return ClusterSpec.with_gpus(gpus, per_node)


def main(argv: list[str]) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.trace == "synthetic" and args.format:
        p.error("argument --format: only for a trace file, not the synthetic trace")
    if args.trace != "synthetic" and args.jobs_per_hour is not None:
        p.error("argument --jobs-per-hour: only for the synthetic trace")
    try:
        policies = [make_policy(name) for name in args.policy]
        spec = _cluster(p, args)
        if args.trace == "synthetic":
            rate = {} if args.jobs_per_hour is None else {"jobs_per_hour": args.jobs_per_hour}
            trace = synthetic_trace(args.jobs or 1000, seed=args.seed, max_gpus=spec.gpus, **rate)
        else:
            trace = read_trace(args.trace, args.format)
            if args.jobs:
                if args.jobs > len(trace):
                    p.error(f"argument --jobs: the trace has {len(trace)} jobs, got {args.jobs}")
                trace = trace.head(args.jobs)
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
        return cliargs.fail(p.prog, str(error))
    notes = [f"trace {trace.name}: {len(trace)} jobs; cluster {spec.switches}x{spec.nodes_per_switch}"
             f"x{spec.gpus_per_node} = {spec.gpus} GPUs; placement {args.placement}; times in s",
             *trace.notes]
    if args.chrome_trace:
        result.to_recorder().save_chrome_trace(str(args.chrome_trace))
        notes.append(f"Chrome trace of {result.policy} written to {args.chrome_trace}")
    print(emit(rows, as_json=args.json, title="Cluster scheduling", columns=COLUMNS, notes=notes))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
