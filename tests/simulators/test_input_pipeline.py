"""The input-pipeline model: processor sharing, the closed-form bound it reaches, measured costs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from mlsys.data import TensorDataset, Transformed
from simulators.input_pipeline import (
    LoaderCosts,
    SharedCores,
    measure_available_cores,
    measure_costs,
    simulate_loader,
    step_time_bound,
)


def finish_times(cores: float, works: list[float], starts: list[float] | None = None) -> list[float]:
    env = simpy.Environment()
    cpu = SharedCores(env, cores)
    done = [math.nan] * len(works)

    def job(i: int, start: float, seconds: float):
        yield env.timeout(start)
        yield cpu.run(seconds)
        done[i] = env.now

    for i, (start, seconds) in enumerate(zip(starts or [0.0] * len(works), works)):
        env.process(job(i, start, seconds))
    env.run()
    return done


def test_shared_cores_is_processor_sharing() -> None:
    assert finish_times(1, [1.0, 1.0]) == pytest.approx([2.0, 2.0])
    assert finish_times(1, [1.0, 2.0]) == pytest.approx([2.0, 3.0])  # half a core each, then one
    assert finish_times(2, [1.0, 2.0, 3.0]) == pytest.approx([1.5, 2.5, 3.5])  # 2/3 of a core each, then 1
    assert finish_times(0.5, [1.0]) == pytest.approx([2.0])  # a busy machine: half a core
    # a job arriving at t=1 halves the first one's speed: 1 s alone, then 1 s of work at 0.5
    assert finish_times(1, [2.0, 1.0], starts=[0.0, 1.0]) == pytest.approx([3.0, 3.0])


@pytest.mark.parametrize("load, step, workers, cores", [
    (0.03, 0.01, 0, 2), (0.03, 0.01, 1, 2),  # no workers: in turn; one: the worker is the bottleneck
    (0.03, 0.01, 2, 2), (0.03, 0.01, 4, 2),  # the two cores are the bottleneck (oversubscribed)
    (0.03, 0.01, 2, 8), (0.03, 0.01, 3, 8), (0.03, 0.01, 6, 8),  # to the training step's own time
    (0.01, 0.03, 1, 2), (0.02, 0.02, 3, 1),
])
def test_long_runs_reach_the_closed_form_bound(load, step, workers, cores) -> None:
    costs = LoaderCosts.constant(load=load, step=step)
    simulated = simulate_loader(costs, workers, cores=cores, batches=400).steady_step(warmup=20)
    assert simulated == pytest.approx(step_time_bound(costs, workers, cores), rel=0.01)


def test_sharing_a_core_slows_the_step_below_the_bound() -> None:
    # 1.5 cores: while the worker loads (10 ms of work at 0.75 core: 13.3 ms) the step runs at
    # 0.75 too, and does its remaining 20 ms alone: 33.3 ms per step, not the bound's 30
    costs = LoaderCosts.constant(load=0.01, step=0.03)
    simulated = simulate_loader(costs, 1, cores=1.5, batches=400).steady_step(warmup=20)
    assert step_time_bound(costs, 1, 1.5) == pytest.approx(0.03)
    assert simulated == pytest.approx(0.01 / 0.75 + 0.02, rel=1e-6)


def test_the_knee_is_where_workers_outrun_the_step() -> None:
    costs = LoaderCosts.constant(load=0.03, step=0.01, send=0.001, receive=0.001)
    times = [simulate_loader(costs, w, cores=64, batches=200).steady_step(warmup=10) for w in range(7)]
    close = lambda expected: pytest.approx(expected, rel=0.01)  # step ends alternate within a window
    assert times[0] == close(0.04)  # load and step in turn
    assert times[1] == close(0.031) and times[2] == close(0.0155)  # input-bound: the workers' pace
    assert times[3] == close(0.011) and times[6] == close(0.011)  # compute-bound: the step's own time


def test_spread_samples_are_replayed_reproducibly() -> None:
    costs = LoaderCosts((0.02, 0.04), (0.0,), (0.0,), (0.01, 0.015))
    one = simulate_loader(costs, 2, cores=2, batches=50, seed=3)
    assert np.array_equal(one.ends, simulate_loader(costs, 2, cores=2, batches=50, seed=3).ends)
    assert not np.array_equal(one.ends, simulate_loader(costs, 2, cores=2, batches=50, seed=4).ends)
    assert {e.resource for e in one.recorder.events} == {"trainer", "worker 0", "worker 1"}
    busy = one.recorder.busy_time("worker 0") + one.recorder.busy_time("worker 1")
    assert busy > 25 * 0.02  # the workers loaded every batch (and some ahead)


def test_measured_costs_are_cpu_seconds_of_each_part() -> None:
    costly = lambda x: np.linalg.matrix_power(x.astype(np.float64) + np.eye(8), 300).astype(np.float32)
    data = Transformed(TensorDataset(np.zeros((40, 8, 8), np.float32), np.zeros(40, np.int64)), costly)
    calls = []
    costs = measure_costs(data, lambda x, y: calls.append(x.shape), batch_size=8, batches=3)
    assert calls == [(8, 8, 8)] * 4  # a warm-up step and three timed ones
    assert len(costs.load) == len(costs.step) == 3
    assert costs.mean("load") > costs.mean("step")
    with pytest.raises(ValueError, match="has 5 batches of 8, asked for 6"):
        measure_costs(data, lambda x, y: None, batch_size=8, batches=6)


def test_available_cores_are_between_nothing_and_all() -> None:
    import os

    assert 0 < measure_available_cores(0.05) <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("call, message", [
    (lambda: simulate_loader(LoaderCosts.constant(0.01, 0.01), -1, cores=2),
     "num_workers must be an integer >= 0, got -1"),
    (lambda: simulate_loader(LoaderCosts.constant(0.01, 0.01), 1, cores=0),
     "cores must be a finite number > 0, got 0"),
    (lambda: simulate_loader(LoaderCosts.constant(0.01, 0.01), 1, cores=2, prefetch_factor=0),
     "prefetch_factor must be a positive integer, got 0"),
    (lambda: LoaderCosts.constant(float("nan"), 0.01), "load must be a non-empty list of finite seconds"),
    (lambda: measure_available_cores(0), "seconds must be a finite number > 0, got 0"),
])
def test_bad_input_is_refused(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("workers, cores", [(1, 2), (3, 4), (5, 8), (12, 16)])
def test_spread_costs_average_to_their_mean_and_respect_the_bound(workers, cores) -> None:
    # each part's samples are replayed in shuffled passes, so every pass costs exactly the measured
    # mean: past the prefetched start, a run cannot beat the closed form by drawing cheap samples
    rng = np.random.default_rng(1)
    spread = lambda low, high: tuple(rng.uniform(low, high, 8))  # noqa: E731
    costs = LoaderCosts(spread(0.002, 0.006), spread(2e-4, 4e-4), spread(1e-4, 3e-4), spread(8e-4, 1.2e-3))
    bound = step_time_bound(costs, workers, cores)
    for seed in range(5):
        run = simulate_loader(costs, workers, cores=cores, batches=120, seed=seed)
        assert run.steady_step() >= 0.99 * bound
