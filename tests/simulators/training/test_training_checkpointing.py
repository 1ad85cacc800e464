"""Checkpointing under failures: the SimPy job against Daly's closed forms and Young's."""

from __future__ import annotations

import pytest

from simulators.training.checkpointing import (
    CheckpointConfig,
    daly_interval,
    expected_time,
    optimal_interval,
    simulate_checkpointing,
    young_interval,
)

CASES = [(1.0, 2.0, 100.0), (5.0, 10.0, 60.0), (0.2, 1.5, 5.0)]  # (C, R, M) seconds


@pytest.mark.parametrize("cost,restart,mtbf", CASES)
def test_simulated_wall_time_is_dalys_expectation(cost: float, restart: float, mtbf: float) -> None:
    best = optimal_interval(cost, restart, mtbf)
    for tau in (best / 2, best, 2 * best):
        work = 40 * tau
        run = simulate_checkpointing(CheckpointConfig(work, tau, cost, restart, mtbf), runs=300)
        assert run.wall == pytest.approx(expected_time(work, tau, cost, restart, mtbf), rel=0.03)
        assert run.failures > 1 and 0 < run.efficiency < 1


@pytest.mark.parametrize("cost,restart,mtbf", CASES)
def test_the_optimum_is_dalys_and_near_youngs(cost: float, restart: float, mtbf: float) -> None:
    best = optimal_interval(cost, restart, mtbf)
    assert daly_interval(cost, mtbf) == pytest.approx(best, rel=1e-3)
    assert young_interval(cost, mtbf) == pytest.approx(best, rel=0.2)  # first order in C/M
    assert young_interval(cost, mtbf) > best  # Young's ignores the checkpoint's own cost
    worse = [expected_time(1.0, best * f, cost, restart, mtbf) for f in (0.5, 2.0)]
    assert min(worse) > expected_time(1.0, best, cost, restart, mtbf)


def test_without_failures_the_job_pays_only_its_checkpoints() -> None:
    run = simulate_checkpointing(CheckpointConfig(10.0, 2.0, 0.5, 1.0, 1e12), runs=3)
    assert run.wall == pytest.approx(10.0 + 5 * 0.5) and run.failures == 0
    assert daly_interval(10.0, 4.0) == 4.0  # a checkpoint longer than 2M: checkpoint every M


def test_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match="interval must be a positive number of seconds, got 0"):
        CheckpointConfig(10.0, 0, 1.0, 1.0, 10.0)
    with pytest.raises(ValueError, match="restart must be a non-negative number of seconds, got -1"):
        CheckpointConfig(10.0, 1.0, 1.0, -1, 10.0)
    with pytest.raises(ValueError, match="runs must be a positive integer, got 0"):
        simulate_checkpointing(CheckpointConfig(1.0, 1.0, 0.0, 0.0, 1.0), runs=0)
