"""The three models of computation: the simulator against its closed forms, contention where the
closed forms stop, the bytes each way moves, and the fit of a machine's parts."""

from __future__ import annotations

import numpy as np
import pytest

from mlsys.classic import KMeans, Run, Span, run_local, split
from simulators.core import LinkSpec
from simulators.dataflow import (
    Engine,
    Machine,
    NullAlgorithm,
    Superstep,
    allreduce_step,
    dataflow_step,
    parameter_server_step,
    simulate,
    simulate_allreduce,
    simulate_dataflow,
    simulate_parameter_server,
    superstep_of,
    timeline,
)
from simulators.dataflow.calibrate import _fit

LINK = LinkSpec(1.25e9, 25e-6)
STEP = Superstep(compute=0.01, statistics_bytes=8e5, decision_bytes=3e5, decide=1e-3, apply=2e-4,
                 reduce_rate=1e-10)


@pytest.mark.parametrize("workers", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("statistics_bytes", [8.0 * 240, 8.0 * 96_000])  # counts divide evenly
def test_allreduce_is_its_closed_form(workers: int, statistics_bytes: float) -> None:
    step = Superstep(0.01, statistics_bytes, 100.0, decide=1e-3, reduce_rate=1e-10)
    if workers == 1:
        assert simulate_allreduce(step, 1, LINK).seconds_per_step == pytest.approx(0.011)
        return
    power_of_two = workers & (workers - 1) == 0  # recursive doubling's closed form needs it
    for algorithm in ("ring", "auto") if power_of_two else ("ring",):
        simulated = simulate_allreduce(step, workers, LINK, algorithm=algorithm).seconds_per_step
        assert simulated == pytest.approx(allreduce_step(step, workers, LINK, algorithm),
                                          rel=1e-12)


@pytest.mark.parametrize("workers, servers", [(1, 1), (4, 1), (8, 2), (3, 5), (16, 16)])
@pytest.mark.parametrize("touched", [1.0, 0.05])
def test_parameter_server_is_its_closed_form(workers: int, servers: int, touched: float) -> None:
    simulated = simulate_parameter_server(STEP, workers, LINK, servers=servers, touched=touched)
    closed = parameter_server_step(STEP, workers, LINK, servers=servers, touched=touched)
    assert simulated.seconds_per_step == pytest.approx(closed, rel=1e-12)
    assert simulated.bytes_per_step == pytest.approx(workers * touched * 11e5)


@pytest.mark.parametrize("workers", [1, 2, 5, 12])
@pytest.mark.parametrize("engine", [Engine(0.0), Engine(0.0, reduce="shuffle"), Engine(2e-3),
                                    Engine(5e-3, tasks_per_partition=1)])
def test_dataflow_is_its_closed_form(workers: int, engine: Engine) -> None:
    simulated = simulate_dataflow(STEP, workers, LINK, engine)
    assert simulated.seconds_per_step == pytest.approx(dataflow_step(STEP, workers, LINK, engine),
                                                       rel=1e-12)
    assert simulated.bytes_per_step == pytest.approx(workers * 11e5)
    dispatched = [e for e in simulated.recorder.events if e.category == "overhead"]
    assert sum(e.duration for e in dispatched) == pytest.approx(
        3 * engine.tasks_per_partition * workers * engine.task_overhead)


def test_shuffle_stage_pays_for_its_tasks_and_a_second_round() -> None:
    engine = Engine(1e-3, reduce="shuffle")
    with pytest.raises(ValueError, match="no closed form"):
        dataflow_step(STEP, 4, LINK, engine)
    driver = simulate_dataflow(STEP, 4, LINK, Engine(1e-3)).seconds_per_step
    shuffled = simulate_dataflow(STEP, 4, LINK, engine).seconds_per_step
    spark = simulate_dataflow(STEP, 4, LINK, Engine(1e-3, reduce="shuffle", block_tasks=False))
    # 16 block tasks and 4 reduce tasks more than gathering at the driver
    assert shuffled - spark.seconds_per_step == pytest.approx(16e-3, rel=1e-9)
    assert spark.seconds_per_step > driver


def test_where_each_way_wins() -> None:
    """A single server's port and a driver's port carry every worker's bytes: the all-reduce
    pulls ahead as workers are added; sharding the server or a sparse model turns it around."""
    big = Superstep(compute=0.02, statistics_bytes=40e6, decision_bytes=40e6)
    times = {w: {way: simulate(way, big, w, LINK, steps=1).seconds_per_step
                 for way in ("all-reduce", "parameter server", "dataflow")} for w in (4, 16)}
    assert times[16]["all-reduce"] < times[16]["parameter server"] < times[16]["dataflow"]
    growth = {way: times[16][way] / times[4][way] for way in times[4]}
    assert growth["all-reduce"] < 1.3 and growth["parameter server"] > 3
    # one server per worker is a direct reduce-scatter and all-gather: the all-reduce's bytes
    sharded = simulate_parameter_server(big, 16, LINK, servers=16, steps=1).seconds_per_step
    assert sharded == pytest.approx(times[16]["all-reduce"], rel=0.05)
    sparse = simulate_parameter_server(big, 16, LINK, touched=0.01, steps=1).seconds_per_step
    assert sparse < 0.5 * times[16]["all-reduce"]


@pytest.mark.parametrize("call, message", [
    (lambda: Superstep(-1.0, 8, 8), "compute must be a finite number >= 0"),
    (lambda: Superstep(0.1, float("inf"), 8), "statistics_bytes"),
    (lambda: Engine(reduce="tree"), "reduce must be one of"),
    (lambda: Engine(tasks_per_partition=0), "tasks_per_partition must be"),
    (lambda: simulate_allreduce(STEP, 0, LINK), "workers must be an integer >= 1"),
    (lambda: simulate_allreduce(STEP, 4, LINK, algorithm="fast"), "unknown all-reduce algorithm"),
    (lambda: simulate_parameter_server(STEP, 4, LINK, touched=1.5), "touched must be a fraction"),
    (lambda: simulate_parameter_server(STEP, 4, LINK, servers=0), "servers must be"),
    (lambda: simulate("spark", STEP, 4, LINK), "unknown way 'spark'"),
    (lambda: NullAlgorithm(12, 8), "multiple of 8"),
])
def test_bad_inputs_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def _fake_run(way: str, seconds: float, statistics_bytes: float) -> Run:
    spans = [Span(f"worker {w}", "compute", s, 0.0, 0.0) for w in range(2) for s in range(4)]
    return Run(way, 2, None, 4, 4 * seconds, 0.0, statistics_bytes, statistics_bytes, spans)


@pytest.mark.parametrize("way", ["parameter server", "Dask (driver)"])
def test_fit_recovers_the_parts_that_made_the_times(way: str) -> None:
    truth_link, overhead = LinkSpec(2e9, 4e-5), (3e-3 if way.startswith("Dask") else 0.0)
    truth = Machine({"Dask" if way.startswith("Dask") else way: truth_link}, overhead)
    runs = []
    for size, reduce in ((256, "driver"), (1 << 20, "driver"), (256, "shuffle"),
                         (1 << 20, "shuffle")):
        name = way if not way.startswith("Dask") else f"Dask ({reduce})"
        if name != way and not way.startswith("Dask"):
            continue
        probe = _fake_run(name, 1.0, size)
        runs.append(_fake_run(name, truth.simulate(probe).seconds_per_step, size))
    link, fitted_overhead = _fit(runs, dask=way.startswith("Dask"))
    assert link.latency == pytest.approx(truth_link.latency, rel=1e-3)
    assert link.bandwidth == pytest.approx(truth_link.bandwidth, rel=1e-3)
    assert fitted_overhead == pytest.approx(overhead, rel=1e-3, abs=1e-9)


def test_a_measured_run_becomes_a_superstep_and_a_timeline() -> None:
    x = np.random.default_rng(0).normal(size=(400, 3))
    run = run_local(KMeans(x[:4], iterations=5), split(2, x))
    step = superstep_of(run)
    assert step.compute > 0 and step.statistics_bytes == 8 * (4 * 3 + 4 + 1)
    assert step.decision_bytes == 8 * 12
    recorder = timeline(run, steps=range(1, 3))
    assert {e.name for e in recorder.events} == {"step 1", "step 2"}
    assert recorder.resources == ["worker 0", "worker 1"]
    trace = recorder.to_chrome_trace()
    assert len([e for e in trace["traceEvents"] if e["ph"] == "X"]) == len(recorder)
