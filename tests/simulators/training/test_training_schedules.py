"""Pipeline schedules: the simulated bubble equals the closed forms exactly in the ideal case."""

from __future__ import annotations

import pytest

from mlsys.parallel.schedules import (
    Slot,
    bubble_fraction,
    build,
    gpipe,
    interleaved,
    one_f_one_b,
    peak_in_flight,
)
from simulators.training.pipeline import run_pipeline

CASES = [("gpipe", 4, 8, 1), ("gpipe", 8, 3, 1), ("1f1b", 4, 8, 1), ("1f1b", 8, 3, 1),
         ("1f1b", 1, 5, 1), ("interleaved", 4, 8, 2), ("interleaved", 4, 4, 3),
         ("interleaved", 8, 16, 4), ("interleaved", 2, 6, 2)]


@pytest.mark.parametrize("name,p,m,v", CASES)
@pytest.mark.parametrize("backward_ratio", [1.0, 2.0, 3.0])
def test_simulated_bubble_equals_closed_form(name, p, m, v, backward_ratio) -> None:
    run = run_pipeline(build(name, p, m, v), lambda s: (1.0 if s.phase == "F" else backward_ratio) / v)
    assert run.bubble_fraction == pytest.approx(bubble_fraction(name, p, m, v), abs=1e-12)
    ideal = m * (1 + backward_ratio)
    assert run.makespan == pytest.approx(ideal + (p - 1) * (1 + backward_ratio) / v)


def test_closed_forms() -> None:
    assert bubble_fraction("1f1b", 4, 8) == pytest.approx(3 / 11)
    assert bubble_fraction("gpipe", 8, 1) == pytest.approx(7 / 8)
    # Narayanan et al.: interleaving divides the bubble time (p-1)/m of the ideal time by v
    f = bubble_fraction("interleaved", 8, 16, 4)
    assert f / (1 - f) == pytest.approx((8 - 1) / (4 * 16))


@pytest.mark.parametrize("name,p,m,v", CASES)
def test_every_slot_runs_once_on_its_device(name, p, m, v) -> None:
    schedule = build(name, p, m, v)
    expected = {Slot(c, i, ph) for c in range(p * v) for i in range(m) for ph in "FB"}
    seen = [slot for slots in schedule for slot in slots]
    assert len(seen) == len(expected) and set(seen) == expected
    assert all(slot.chunk % p == d for d, slots in enumerate(schedule) for slot in slots)


def test_activations_in_flight() -> None:
    assert peak_in_flight(gpipe(4, 8)) == [8, 8, 8, 8]
    assert peak_in_flight(one_f_one_b(4, 8)) == [4, 3, 2, 1]
    assert peak_in_flight(one_f_one_b(4, 2)) == [2, 2, 2, 1]
    # interleaved: the first device holds (v+1)p-1 chunk activations, i.e. L(1+(p-1)/(pv)) layers'
    p, v = 4, 2
    assert peak_in_flight(interleaved(p, 8, v))[0] == (v + 1) * p - 1


def test_transfers_delay_the_pipeline() -> None:
    free = run_pipeline(gpipe(4, 8), lambda s: 1.0)
    slow = run_pipeline(gpipe(4, 8), lambda s: 1.0, p2p_time=0.5)
    # GPipe streams: only the first forward and the last backward wait on p-1 links each
    assert slow.makespan == pytest.approx(free.makespan + 2 * 3 * 0.5)
    # 1F1B's steady state waits on round trips, so it suffers more from slow links
    assert run_pipeline(one_f_one_b(4, 8), lambda s: 1.0, p2p_time=0.5).makespan > slow.makespan


def test_bad_input_and_deadlock() -> None:
    with pytest.raises(ValueError, match="divisible by stages"):
        interleaved(4, 6, 2)
    with pytest.raises(ValueError, match="unknown pipeline schedule 'zigzag'"):
        build("zigzag", 2, 2)
    with pytest.raises(ValueError, match="microbatches must be a positive integer"):
        gpipe(2, 0)
    # device 0 waits for a backward before running the forward that feeds it
    bad = [[Slot(0, 0, "B"), Slot(0, 0, "F")], [Slot(1, 0, "F"), Slot(1, 0, "B")]]
    with pytest.raises(RuntimeError, match="deadlocked"):
        run_pipeline(bad, lambda s: 1.0)
