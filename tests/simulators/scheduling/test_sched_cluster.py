"""Cluster bookkeeping, placement strategies, metrics, the CLI and the benchmark rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sched_tiny import jobs

from simulators.scheduling import Cluster, ClusterSpec, jain_index, simulate, summarize
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
                 "--chrome-trace", str(tmp_path / "las.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in out["rows"]] == ["fifo", "las"] and (tmp_path / "las.json").exists()
    assert main(["--policy", "lifo"]) == 2
    assert "unknown policy 'lifo'" in capsys.readouterr().err


def test_bench_rows_match_the_simulator_benchmark_format():
    rows = scenarios(quick=True, policies=("fifo", "srtf"))
    assert [r["family"] for r in rows] == ["scheduling"] * 2
    assert set(rows[0]) == {"family", "scenario", "events", "simulated_s", "wall_s", "events_per_s"}
    assert all(r["events"] >= 4000 and np.isfinite(r["events_per_s"]) for r in rows)
