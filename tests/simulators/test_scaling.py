"""Scaling laws: the simulator equals Amdahl and Gustafson where they hold, and departs where not."""

from __future__ import annotations

import math

import pytest

from simulators.scaling import (
    EngineWorkload,
    Measurement,
    Workload,
    amdahl,
    curve,
    effective_cores,
    gustafson,
    optimal_workers,
    shares,
    simulate,
    speedup,
)

CASES = [(1.0, 9.0), (0.5, 99.5), (3.0, 1.0), (0.0, 5.0), (2.0, 0.0)]


@pytest.mark.parametrize("serial, parallel", CASES)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_strong_scaling_is_amdahl(serial: float, parallel: float, n: int) -> None:
    w = Workload(serial, parallel)
    assert speedup(w, n, "strong") == pytest.approx(amdahl(w.serial_fraction, n), rel=1e-12)
    assert simulate(w, n).time == pytest.approx(serial + parallel / n, rel=1e-12)


@pytest.mark.parametrize("serial, parallel", CASES)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_weak_scaling_is_gustafson(serial: float, parallel: float, n: int) -> None:
    w = Workload(serial, parallel)
    assert speedup(w, n, "weak") == pytest.approx(gustafson(w.serial_fraction, n), rel=1e-12)
    assert simulate(w, n, "weak").time == pytest.approx(serial + parallel, rel=1e-12)


def test_amdahl_bound_and_gustafson_growth() -> None:
    assert float(amdahl(0.05, 10**9)) == pytest.approx(20.0, rel=1e-6)
    assert float(gustafson(0.05, 1000)) == pytest.approx(950.05)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_communication_adds_one_hand_off_per_extra_worker(n: int) -> None:
    w = Workload(1.0, 9.0, comm_per_worker=0.1)
    assert simulate(w, n).time == pytest.approx(1.0 + 9.0 / n + 0.1 * (n - 1), rel=1e-12)
    assert speedup(w, n) <= float(amdahl(w.serial_fraction, n)) + 1e-12


def test_communication_gives_an_optimal_worker_count() -> None:
    w = Workload(1.0, 100.0, comm_per_worker=1.0)
    assert optimal_workers(w) == 10.0
    times = {n: simulate(w, n).time for n in range(1, 40)}
    assert min(times, key=times.get) == 10
    assert optimal_workers(Workload(1.0, 1.0)) == math.inf


def test_imbalance_lets_the_largest_share_set_the_pace() -> None:
    assert shares(8.0, 4, 0.5).tolist() == pytest.approx([1.0, 5 / 3, 7 / 3, 3.0])
    run = simulate(Workload(1.0, 8.0), 4, imbalance=0.5)
    assert run.time == pytest.approx(1.0 + 3.0)
    assert sum(run.shares) == pytest.approx(8.0)


def test_stragglers_are_seeded_and_slow_the_step() -> None:
    w = Workload(0.0, 8.0)
    assert simulate(w, 8, straggler_prob=1.0, straggler_slowdown=3.0).time == pytest.approx(3.0)
    a = simulate(w, 8, straggler_prob=0.3, seed=4)
    assert a.shares == simulate(w, 8, straggler_prob=0.3, seed=4).shares
    slowed = [e.args["straggler"] for e in a.recorder.events if e.category == "parallel"]
    assert a.time == pytest.approx(2.0 if any(slowed) else 1.0)
    seeds = {simulate(w, 8, straggler_prob=0.3, seed=s).time for s in range(10)}
    assert seeds == {1.0, 2.0}


def test_the_run_is_recorded_as_a_timeline() -> None:
    run = simulate(Workload(1.0, 4.0, comm_per_worker=0.5), 3)
    assert run.recorder.resources == ["worker 0", "worker 1", "worker 2"]
    assert run.recorder.busy_time("worker 0", "serial") == 1.0
    comms = sorted(e.start for e in run.recorder.events if e.category == "comm")
    assert comms == pytest.approx([1.0 + 4 / 3, 1.0 + 4 / 3 + 0.5])  # one hand-off at a time


def test_curve_rows_carry_the_law() -> None:
    rows = curve(Workload(1.0, 3.0), [1, 2, 4], "weak")
    assert [r["workers"] for r in rows] == [1, 2, 4]
    assert all(r["speedup"] == pytest.approx(r["law"]) for r in rows)
    assert rows[2]["efficiency"] == pytest.approx(gustafson(0.25, 4) / 4)


@pytest.mark.parametrize("make, match", [
    (lambda: Workload(-1.0, 1.0), "Workload.serial must be a finite number"),
    (lambda: Workload(0.0, 0.0), "serial \\+ parallel must be > 0"),
    (lambda: simulate(Workload(1.0, 1.0), 0), "workers must be an integer >= 1, got 0"),
    (lambda: simulate(Workload(1.0, 1.0), 2, "medium"), "scaling must be one of"),
    (lambda: simulate(Workload(1.0, 1.0), 2, imbalance=1.5), "imbalance must be in"),
    (lambda: simulate(Workload(1.0, 1.0), 2, straggler_prob=2), "straggler_prob"),
    (lambda: simulate(Workload(1.0, 1.0), 2, straggler_slowdown=0.5), "straggler_slowdown"),
    (lambda: amdahl(1.5, 2), "serial_fraction must be in"),
    (lambda: EngineWorkload(-1, 2), "serial_steps must be an integer >= 0"),
])
def test_bad_input_is_rejected(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_engine_workload_runs_on_real_processes() -> None:
    engine = EngineWorkload(serial_steps=1, parallel_steps=4, batch=32, hidden=32)
    step = engine.step_time(steps=2, repeat=1)
    assert 0 < step < 1.0
    assert 0 < engine.step_time(steps=2, repeat=1, workers=2) < 2.0
    measured = engine.measure(2, repeat=1)
    assert set(measured) == {"strong", "weak"}
    assert all(0 < run.seconds < 10.0 and len(run.step_seconds) == 2 for run in measured.values())
    alone = engine.measure(1, "strong", repeat=1)["strong"]
    assert 0 < effective_cores(alone, measured["strong"]) < 4  # two workers, at most two cores + noise
    assert engine.as_workload(step) == Workload(step, 4 * step)
    assert set(engine.measure(1, "weak", repeat=1)) == {"weak"}
    with pytest.raises(ValueError, match="scaling must be one of"):
        engine.measure(2, ["sideways"])


def test_effective_cores_come_from_the_slowdown_per_step_in_the_same_run() -> None:
    alone = Measurement(1.0, (0.010,))
    assert effective_cores(alone, Measurement(0.6, (0.010, 0.010))) == pytest.approx(2.0)
    assert effective_cores(alone, Measurement(1.0, (0.020, 0.020))) == pytest.approx(1.0)  # one core
    assert effective_cores(alone, Measurement(1.0, (0.015, 0.015, 0.015))) == pytest.approx(2.0)
    assert math.isnan(Measurement(1.0, ()).parallel_step)
