"""Cluster bookkeeping, placement strategies, metrics, the CLI and the benchmark rows."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sched_tiny import jobs

from simulators.data import data_path
from simulators.scheduling import (
    Cluster,
    ClusterSpec,
    jain_index,
    make_policy,
    read_trace,
    simulate,
    summarize,
    synthetic_trace,
)
from simulators.scheduling.bench import scenarios
from simulators.scheduling.cli import main
from simulators.scheduling.metrics import contention, finish_time_fairness
from simulators.scheduling.placement import consolidated, get_placement, spread, strict


def test_placements_and_fragmentation():
    cluster = Cluster(ClusterSpec(1, 2, 4))
    cluster.allocate([(0, 3)])
    assert consolidated(cluster, 1) == [(0, 1)]            # best fit: the fuller node
    assert consolidated(cluster, 2) == [(1, 2)]
    assert consolidated(cluster, 5) == [(1, 4), (0, 1)]     # spans only when it must
    assert strict(cluster, 4) == [(1, 4)]
    cluster.allocate([(1, 1)])
    assert strict(cluster, 4) is None and consolidated(cluster, 4) == [(1, 3), (0, 1)]
    assert spread(cluster, 2) == [(0, 1), (1, 1)]
    assert cluster.fragmentation() == 1.0                   # no whole node free
    assert consolidated(cluster, 9) is None


def test_gpus_cannot_be_double_allocated_or_released():
    cluster = Cluster(ClusterSpec(1, 1, 2))
    taken = cluster.allocate([(0, 2)])
    with pytest.raises(RuntimeError, match="has 0 free GPUs"):
        cluster.allocate([(0, 1)])
    cluster.release(taken)
    with pytest.raises(RuntimeError, match="released twice"):
        cluster.release(taken[:1])
    with pytest.raises(ValueError, match="unknown placement 'random'"):
        get_placement("random")
    with pytest.raises(ValueError, match="gpus_per_node must be an integer >= 1"):
        ClusterSpec(1, 1, 0)


def test_metrics_against_closed_forms():
    assert jain_index([1, 1, 1, 1]) == 1.0
    assert jain_index([1, 0, 0, 0]) == 0.25
    # Two 1-GPU jobs on one GPU, both at t=0: JCTs 2 and 4; two jobs in the system for the first
    # job's life, 1.5 on average for the second's (2 for 2 s, then 1 for 2 s).
    result = simulate(jobs((0, 1, 2), (0, 1, 2)), ClusterSpec(1, 1, 1), "fifo")
    assert contention(result).tolist() == [2.0, 1.5]
    # T_ideal = work x max(1, gpus / (C / N)): 2 x 2 = 4 and 2 x 1.5 = 3.
    assert finish_time_fairness(result) == pytest.approx([2 / 4, 4 / 3])
    row = summarize(result)
    assert (row["avg_jct"], row["makespan"], row["utilization"], row["avg_queue"]) == (3, 4, 1, 1)


def test_chrome_trace_has_one_span_per_job_per_gpu(tmp_path):
    result = simulate(jobs((0, 2, 5), (1, 1, 1)), ClusterSpec(1, 1, 4), "fifo")
    recorder = result.to_recorder()
    assert len(recorder) == 3 and recorder.makespan == 5
    data = json.loads(recorder.save_chrome_trace(tmp_path / "t.json").read_text())
    assert data["traceEvents"]


def test_cli_runs_a_trace_and_reports_bad_input(tmp_path, capsys):
    assert main(["--jobs", "200", "--policy", "fifo,las", "--gpus", "32", "--json",
                 "--chrome-trace", str(tmp_path / "run.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in out["rows"]] == ["fifo", "las"]
    assert (tmp_path / "run-fifo.json").exists() and (tmp_path / "run-las.json").exists()
    with pytest.raises(SystemExit) as exit_code:
        main(["--policy", "lifo"])
    assert exit_code.value.code == 2 and "unknown policy 'lifo'" in capsys.readouterr().err


def test_cli_passes_the_policy_knobs_and_writes_per_job_results(tmp_path, capsys):
    jobs_out, segments_out = tmp_path / "jobs.csv", tmp_path / "segments.json"
    assert main(["--trace", "tiresias/60_job.csv", "--gpus", "8", "--gpus-per-node", "4",
                 "--policy", "las", "--las-thresholds", "300,1200", "--promote-knob", "2",
                 "--restart-cost", "0", "--spread-slowdown", "1", "--jobs-out", str(jobs_out),
                 "--segments-out", str(segments_out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    direct = simulate(read_trace(data_path("traces/tiresias/60_job.csv")), ClusterSpec(1, 2, 4),
                      make_policy("las", thresholds=(300, 1200), promote_knob=2), restart_cost=0.0,
                      spread_slowdown=1.0)
    assert row["avg_jct"] == pytest.approx(direct.jct.mean())
    with open(jobs_out) as handle:
        jobs_rows = list(csv.DictReader(handle))
    assert list(jobs_rows[0]) == ["job", "arrival", "start", "end", "gpus", "preemptions", "jct", "work"]
    assert [float(r["end"]) for r in jobs_rows] == direct.finish.tolist()
    assert sum(int(r["preemptions"]) for r in jobs_rows) == direct.preemptions.sum() > 0
    segments = json.loads(segments_out.read_text())
    assert len(segments) == len(direct.segments) and segments[0]["gpus"].count(":") >= 1
    strict = ["--trace", "tiresias/60_job.csv", "--gpus", "8", "--gpus-per-node", "4", "--json",
              "--restart-cost", "0", "--spread-slowdown", "1"]
    assert main([*strict, "--policy", "fifo", "--strict-fifo"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["avg_jct"] == pytest.approx(1556.5, abs=0.05)
    assert main([*strict, "--policy", "gittins", "--gittins-samples", "tiresias/yarn-gput1000.csv",
                 "--gittins-delta", "3250", "--gittins-bins", "32"]) == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--policy", "fifo", "--las-thresholds", "10,20"], "--las-thresholds: only for the las and gittins"),
    (["--policy", "las", "--las-thresholds", "20,10"], "--las-thresholds: expected increasing"),
    (["--policy", "las", "--las-thresholds", "0,10"], "expected a finite number > 0"),
    (["--policy", "las", "--promote-knob", "nan"], "--promote-knob: expected a finite number > 0"),
    (["--policy", "srtf", "--strict-fifo"], "--strict-fifo: only for the fifo policy"),
    (["--policy", "gittins", "--gittins-bins", "1"], "--gittins-bins: expected an integer in"),
    (["--policy", "gittins", "--gittins-samples", "no/such.csv"], "neither a file nor a shipped"),
    (["--policy", "las", "--jobs-out", "no/such/folder/x.csv"], "does not exist"),
])
def test_cli_knobs_are_checked_before_any_work(argv, message, capsys):
    try:
        code = main(["--jobs", "20", *argv])
    except SystemExit as stop:
        code = stop.code
    assert code == 2 and message in capsys.readouterr().err


def test_chrome_trace_has_counters_markers_and_a_bounded_size():
    trace = synthetic_trace(2000, jobs_per_hour=60, max_gpus=32, seed=5)
    result = simulate(trace, ClusterSpec(1, 4, 8), "las")
    events = result.chrome_trace(max_counter_points=100)["traceEvents"]
    phases = {}
    for e in events:
        phases.setdefault(e["ph"], []).append(e)
    assert len(phases["X"]) == sum(len(s.gpus) + len(s.gpus) * (s.overhead > 0) for s in result.segments)
    assert {e["name"] for e in phases["C"]} == {"busy GPUs", "waiting jobs"}
    assert len(phases["C"]) == 2 * 100 < 2 * result.events
    markers = [e["name"].split()[0] for e in phases["i"]]
    assert markers.count("arrive") == 2000 and markers.count("preempt") == result.preemptions.sum() > 0
    busy = [e["args"]["busy"] for e in phases["C"] if e["name"] == "busy GPUs"]
    assert max(busy) <= 32 and min(busy) >= 0


def test_bench_rows_match_the_simulator_benchmark_format():
    rows = scenarios(quick=True, policies=("fifo", "srtf"))
    assert [r["family"] for r in rows] == ["scheduling"] * 2
    assert set(rows[0]) == {"family", "scenario", "events", "simulated_s", "wall_s", "events_per_s"}
    assert all(r["events"] >= 4000 and np.isfinite(r["events_per_s"]) for r in rows)
