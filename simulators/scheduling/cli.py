"""``mlsys sim schedule``: replay a job trace on a cluster under one or more policies.

Examples::

    mlsys sim schedule --policy fifo,srtf,las                      # synthetic Philly-like trace
    mlsys sim schedule --trace tiresias/60_job.csv --cluster tiresias/n32g4.csv --policy las \\
        --chrome-trace las.json
    mlsys sim schedule --trace tiresias/60_job.csv --gpus 8 --gpus-per-node 4 --policy las,gittins \\
        --las-thresholds 3250,7200 --promote-knob 2 --jobs-out jobs.csv   # jobs-las.csv, jobs-gittins.csv
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
from .traces.tiresias import read_service_samples, read_tiresias_cluster

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
    knobs = p.add_argument_group("policy knobs (each only with a policy that has it)")
    knobs.add_argument("--strict-fifo", action="store_true",
                       help="fifo: a blocked first job holds back every later one (no skipping)")
    knobs.add_argument("--las-thresholds", type=cliargs.comma_list(cliargs.positive_float),
                       help="las, gittins: queue thresholds in GPU-seconds, increasing (las "
                       "default 3600,36000,360000; Tiresias's simulator: 3250,7200)")
    knobs.add_argument("--promote-knob", type=cliargs.positive_float,
                       help="las, gittins: return a waiting job to the top queue once it has waited "
                       "this many times its service since its last promotion (Tiresias)")
    knobs.add_argument("--gittins-samples",
                       help="gittins: service-time samples, a CSV with a 'duration' column in "
                       "GPU-seconds: a file or a shipped one such as tiresias/yarn-gput1000.csv "
                       "(default: the trace's own jobs)")
    knobs.add_argument("--gittins-delta", type=cliargs.positive_float,
                       help="gittins: fixed service quantum in GPU-seconds (default: the best one)")
    knobs.add_argument("--gittins-bins", type=cliargs.int_range(2, 100_000),
                       help="gittins: attained-service steps at which the index is read (default 16)")
    knobs.add_argument("--quantum", type=cliargs.positive_float,
                       help="gandiva: time-slice round in seconds (default 600)")
    knobs.add_argument("--lease", type=cliargs.positive_float,
                       help="themis: lease in seconds between re-rankings (default 1800)")
    out = p.add_argument_group("outputs (with several policies, one file each: NAME-POLICY.EXT)")
    out.add_argument("--jobs-out", type=cliargs.output_file,
                     help="per-job results (arrival, start, end, GPUs, preemptions, JCT): .csv or .json")
    out.add_argument("--segments-out", type=cliargs.output_file,
                     help="the segment log (job, start, end, node:gpu pairs, ...): .csv or .json")
    out.add_argument("--chrome-trace", type=cliargs.output_file,
                     help="the cluster timeline as Chrome-trace JSON, with queue and busy-GPU "
                     "counters and arrival/preemption markers (open in Perfetto)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


#: option -> (policies that take it, keyword argument)
KNOBS = {"strict_fifo": (("fifo",), "skip_blocked"), "las_thresholds": (("las", "gittins"), "thresholds"),
         "promote_knob": (("las", "gittins"), "promote_knob"), "gittins_samples": (("gittins",), "samples"),
         "gittins_delta": (("gittins",), "delta"), "gittins_bins": (("gittins",), "bins"),
         "quantum": (("gandiva",), "quantum"), "lease": (("themis",), "lease")}


def _policies(p: cliargs.ArgumentParser, args: argparse.Namespace) -> list:
    """The policies named by ``--policy``, each built with the knobs that apply to it."""
    unknown = [name for name in args.policy if name not in POLICIES]
    if unknown:
        p.error(f"argument --policy: unknown policy {unknown[0]!r}; expected one of "
                f"{', '.join(POLICIES)}")
    given = {key: getattr(args, key) for key in KNOBS if getattr(args, key) not in (None, False)}
    thresholds = given.get("las_thresholds")
    if thresholds and thresholds != sorted(set(thresholds)):
        p.error(f"argument --las-thresholds: expected increasing GPU-seconds, got "
                f"{','.join(f'{t:g}' for t in thresholds)}")
    for key in given:
        if not set(KNOBS[key][0]) & set(args.policy):
            p.error(f"argument --{key.replace('_', '-')}: only for the "
                    f"{' and '.join(KNOBS[key][0])} polic{'ies' if len(KNOBS[key][0]) > 1 else 'y'}, "
                    f"not {','.join(args.policy)}")
    if "gittins_samples" in given:
        given["gittins_samples"] = read_service_samples(resolve(given["gittins_samples"]))
    if "strict_fifo" in given:
        given["strict_fifo"] = False
    return [make_policy(name, **{KNOBS[key][1]: value for key, value in given.items()
                                 if name in KNOBS[key][0]}) for name in args.policy]


def _output(path, policy: str, several: bool):
    """``path``, or with several policies ``path`` with ``-policy`` before its suffix."""
    return path.with_name(f"{path.stem}-{policy}{path.suffix}") if several else path


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
        policies = _policies(p, args)
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
        rows, written = [], []
        for policy in policies:
            sim = Simulation(trace, spec, policy, placement=args.placement,
                             spread_slowdown=args.spread_slowdown, restart_cost=args.restart_cost)
            start = time.perf_counter()
            result = sim.run()
            elapsed = time.perf_counter() - start
            result.check_conservation()
            rows.append({**summarize(result), "sim_s": elapsed})
            for path, save in ((args.jobs_out, result.save_jobs), (args.segments_out, result.save_segments),
                               (args.chrome_trace, result.save_chrome_trace)):
                if path:
                    written.append(str(save(_output(path, policy.name, len(policies) > 1))))
    except (ValueError, OSError, TraceError) as error:
        return cliargs.fail(p.prog, str(error))
    notes = [f"trace {trace.name}: {len(trace)} jobs; cluster {spec.switches}x{spec.nodes_per_switch}"
             f"x{spec.gpus_per_node} = {spec.gpus} GPUs; placement {args.placement}; times in s",
             *trace.notes]
    if written:
        notes.append(f"wrote {', '.join(written)}")
    print(emit(rows, as_json=args.json, title="Cluster scheduling", columns=COLUMNS, notes=notes))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
