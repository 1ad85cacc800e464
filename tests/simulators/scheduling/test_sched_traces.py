"""Trace readers: every shared trace format reads, and every kind of bad row is named or listed."""

from __future__ import annotations

import pytest

from simulators.data import read_text
from simulators.scheduling import ClusterSpec, TraceError, read_trace, simulate, synthetic_trace
from simulators.scheduling.traces import (
    PHILLY_SHAPE,
    load_throughputs,
    read_gavel,
    read_helios,
    read_pai,
    read_philly,
    read_tiresias,
    read_tiresias_cluster,
)

TIRESIAS_HEADER = "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_tiresias_trace_and_cluster(trace_file):
    trace = read_tiresias(trace_file("tiresias/60_job.csv"))
    assert len(trace) == 60 and trace.jobs[1].gpus == 8 and trace.jobs[0].model == "vgg19"
    assert trace.jobs[0].work == 164 and trace.jobs[0].iterations == 606
    spec = read_tiresias_cluster(trace_file("tiresias/n32g4.csv"))
    assert spec == ClusterSpec(1, 32, 4)
    simulate(trace, spec, "las").check_conservation()


def test_gavel_philly_virtual_cluster_trace(trace_file):
    rates = load_throughputs(trace_file("gavel_philly/simulation_throughputs.json"), "v100")
    trace = read_gavel(trace_file("gavel_philly/philly_vc_traces/23dbec.trace"), rates)
    assert len(trace) == 9
    first = trace.jobs[0]
    assert first.work == pytest.approx(first.iterations / rates[(first.model, first.gpus)])
    assert read_trace(trace_file("gavel_philly/philly_vc_traces/23dbec.trace")).jobs == trace.jobs


def test_gavel_physical_cluster_trace_has_ten_fields(trace_file):
    trace = read_trace(trace_file("gavel_philly/physical_cluster/small_test.trace"),
                       sort=True)
    assert len(trace) > 0 and all(j.work > 0 for j in trace)


def test_philly_sorts_arrivals_and_lists_zero_length_jobs(trace_file, tmp_path):
    lines = read_text(trace_file("pollux_philly/traces/philly.csv")).splitlines()
    trace = read_philly(write(tmp_path, "philly.csv", "\n".join(lines[:3001]) + "\n"))
    assert len(trace) == 3000 and trace.jobs[0].arrival == 0
    assert all(a.arrival <= b.arrival for a, b in zip(trace.jobs, trace.jobs[1:]))
    assert any("sorted" in note for note in trace.notes)
    bad = write(tmp_path, "bad.csv", lines[0] + "\n2017-10-09 07:01:55,0.0,1,0.0,11cb48\n"
                "2017-10-09 07:02:00,60.0,2,120.0,11cb48\n")
    with pytest.raises(TraceError, match=r"bad.csv, line 2: .*work \(duration\) must be"):
        read_philly(bad)
    trace = read_philly(bad, on_error="skip")
    assert len(trace) == 1 and trace.skipped[0][0] == 2


def test_helios_and_pai_follow_their_published_columns(tmp_path):
    helios = write(tmp_path, "cluster_log.csv",
                   "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,"
                   "end_time,duration,queue\n"
                   "a,u1,vcA,8,32,1,COMPLETED,2020-04-01 00:00:00,,,3600,0\n"
                   "b,u2,vcA,0,4,1,COMPLETED,2020-04-01 00:00:05,,,10,0\n"
                   "c,u2,vcB,1,4,1,FAILED,2020-04-01 00:01:00,,,60,0\n")
    trace = read_helios(helios)
    assert [(j.id, j.arrival, j.gpus, j.work) for j in trace] == [("a", 0, 8, 3600), ("c", 60, 1, 60)]
    assert trace.skipped == [(3, "job b is CPU-only (gpu_num 0)")]
    pai = write(tmp_path, "pai_task_table.csv",
                "j1,worker,2,Terminated,100,700,600,29,50,MISC\n"
                "j1,ps,1,Terminated,90,710,600,29,,\n"
                "j2,worker,1,Terminated,50,80,600,29,100,V100\n"
                "j3,worker,1,Terminated,60,90,600,29,,\n")
    trace = read_pai(pai)
    assert [(j.id, j.arrival, j.gpus, j.work) for j in trace] == [("j2", 50, 1, 30), ("j1", 100, 1, 600)]
    assert trace.skipped[0][0] == 4 and "CPU-only" in trace.skipped[0][1]


@pytest.mark.parametrize(("rows", "message"), [
    ("0,1,0,10,m,-5,0\n", "column 'duration': expected a value >= 0, got '-5'"),
    ("0,1,0,10,m,0,0\n", "work \\(duration\\) must be finite and > 0"),
    ("0,1,0,10,m,abc,0\n", "column 'duration': expected a number, got 'abc'"),
    ("0,0,0,10,m,5,0\n", "column 'num_gpu': expected a value >= 1"),
    ("0,1,10,10,m,5,0\n1,1,5,10,m,5,0\n", "arrivals must be sorted"),
    ("0,64,0,10,m,5,0\n", "needs 64 GPUs but the cluster has 16"),
])
def test_bad_rows_are_named_with_file_and_line(tmp_path, rows, message):
    path = write(tmp_path, "jobs.csv", TIRESIAS_HEADER + rows)
    with pytest.raises(TraceError, match=message) as error:
        read_tiresias(path, max_gpus=16)
    assert "jobs.csv, line" in str(error.value)


def test_missing_columns_and_skipped_rows(tmp_path):
    with pytest.raises(TraceError, match=r"missing column\(s\) \['duration'\]"):
        read_tiresias(write(tmp_path, "a.csv", "job_id,num_gpu,submit_time\n0,1,0\n"))
    path = write(tmp_path, "b.csv", TIRESIAS_HEADER + "0,1,0,1,m,5,0\n1,1,1,1,m,-1,0\n2,1,2,1,m,5,0\n")
    trace = read_tiresias(path, on_error="skip")
    assert [j.id for j in trace] == ["0", "2"] and trace.skipped[0][0] == 3
    with pytest.raises(ValueError, match="on_error must be"):
        read_tiresias(path, on_error="ignore")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_trace(write(tmp_path, "c.csv", "x,y\n1,2\n"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_trace(tmp_path / "none.csv", "tiresias")


def test_synthetic_trace_is_deterministic_and_philly_shaped():
    a, b = synthetic_trace(20_000, seed=1), synthetic_trace(20_000, seed=1)
    assert a.jobs == b.jobs and a.jobs != synthetic_trace(20_000, seed=2).jobs
    single = sum(j.gpus == 1 for j in a) / len(a)
    assert single == pytest.approx(PHILLY_SHAPE[1][0], abs=0.01)
    rate = len(a) / (a.jobs[-1].arrival / 3600)
    assert rate == pytest.approx(31.5, rel=0.03)
    assert max(j.gpus for j in synthetic_trace(2000, max_gpus=8)) <= 8
    with pytest.raises(ValueError, match="n_jobs"):
        synthetic_trace(0)


@pytest.fixture(scope="module")
def one_of_each(trace_file, tmp_path_factory):
    """A trace of every supported format (shared files where they exist, else tiny written ones)."""
    tmp = tmp_path_factory.mktemp("formats")
    philly = read_text(trace_file("pollux_philly/traces/philly.csv")).splitlines()[:301]
    helios = ["job_id,vc,gpu_num,submit_time,duration"]
    helios += [f"h{i},vc{i % 3},{1 + i % 8},{60 * i},{300 + 97 * i}" for i in range(40)]
    pai = [f"j{i},worker,{1 + i % 2},Terminated,{50 * i},{650 + 63 * i},600,29,{50 + 50 * (i % 3)},V100"
           for i in range(40)]
    return {
        "tiresias": read_trace(trace_file("tiresias/60_job.csv")),
        "gavel": read_trace(trace_file("gavel_philly/philly_vc_traces/0e4a51.trace")).head(60),
        "philly": read_trace(write(tmp, "philly.csv", "\n".join(philly) + "\n")),
        "helios": read_trace(write(tmp, "cluster_log.csv", "\n".join(helios) + "\n")),
        "pai": read_trace(write(tmp, "pai_task_table.csv", "\n".join(pai) + "\n"), "pai"),
    }


@pytest.mark.parametrize("fmt", ["tiresias", "gavel", "philly", "helios", "pai"])
def test_every_policy_runs_every_format_with_conservation(one_of_each, fmt):
    from simulators.scheduling import POLICIES

    trace = one_of_each[fmt]
    spec = ClusterSpec.with_gpus(max(16, max(j.gpus for j in trace)), gpus_per_node=4)
    for name in POLICIES:
        simulate(trace, spec, name).check_conservation()
