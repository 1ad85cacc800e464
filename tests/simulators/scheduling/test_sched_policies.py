"""Policies against schedules worked out by hand, closed forms, and conservation on a big trace."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sched_tiny import jobs

from simulators.scheduling import (
    POLICIES,
    ClusterSpec,
    Job,
    Policy,
    Simulation,
    Trace,
    make_policy,
    simulate,
    summarize,
    synthetic_trace,
)
from simulators.scheduling.policies.gittins import gittins_index

ONE_GPU = ClusterSpec(1, 1, 1)
# A long job, then two short ones arriving while it runs (arrival, gpus, work).
THREE = jobs((0, 1, 10), (1, 1, 2), (2, 1, 1))


def finishes(policy, trace=THREE, spec=ONE_GPU, **options) -> list[float]:
    result = simulate(trace, spec, policy, restart_cost=0.0, **options)
    result.check_conservation()
    return result.finish.tolist()


def test_fifo_runs_in_arrival_order():
    assert finishes("fifo") == [10, 12, 13]


def test_sjf_picks_the_shortest_waiting_job_but_never_preempts():
    assert finishes("sjf") == [10, 13, 11]


def test_srtf_preempts_for_a_shorter_remaining_time():
    # A runs 0-1; B (2 s) preempts it and runs 1-3 (C ties B's remaining 1 s at t=2, B arrived
    # first); C runs 3-4; A finishes its remaining 9 s at 13.
    assert finishes("srtf") == [13, 3, 4]


def test_las_demotes_jobs_at_each_attained_service_threshold():
    # Threshold 1.5 GPU-s: A is demoted at 1.5 and B takes over; B is demoted at 3.0 and C (new,
    # top queue) runs 3-4; the bottom queue is FIFO: A 4-12.5, then B's last 0.5 s.
    assert finishes(make_policy("las", thresholds=(1.5,))) == [12.5, 13, 4]


def test_las_keeps_running_jobs_ahead_of_waiting_ones_in_a_queue():
    # W (4 GPUs) cannot start beside A; S (2 GPUs, later) skips ahead. When A ends, W fits only
    # by preempting S: Tiresias keeps S, a running job of W's queue, and W waits for it.
    trace = jobs((0, 2, 5), (1, 4, 10), (2, 2, 10))
    result = simulate(trace, ClusterSpec(1, 1, 4), make_policy("las", thresholds=(1e6,)),
                      restart_cost=0.0)
    assert result.finish.tolist() == [5, 22, 12] and result.preemptions.sum() == 0


def test_las_promotes_a_starving_job_after_promote_knob_times_its_service():
    # L is demoted at 10 GPU-s, preempted at 20 by S1; with knob 0.5 it returns to the top queue
    # at 30 (waited 10 s = 0.5 x 20 s run), ahead of S3 (arrives 36); demoted again at 46 it
    # yields to S3 (46-54) and ends at 124. Without the knob S3 simply runs first (36-44).
    trace = jobs((0, 1, 100), (20, 1, 8), (28, 1, 8), (36, 1, 8))
    fair = simulate(trace, ONE_GPU, make_policy("las", thresholds=(10.0,), promote_knob=0.5),
                    restart_cost=0.0)
    fair.check_conservation()
    assert fair.finish.tolist() == [124, 28, 36, 54] and fair.preemptions.tolist() == [2, 0, 0, 0]
    assert finishes(make_policy("las", thresholds=(10.0,)), trace) == [124, 28, 36, 44]
    with pytest.raises(ValueError, match="promote_knob must be a finite number > 0"):
        make_policy("las", promote_knob=0)


def test_preemption_spares_the_best_victims_that_need_not_stop():
    class ByModel(Policy):  # priority written in the job's model field
        name = "by-model"
        preemptive = True

        def key(self, state, now):
            return (int(state.job.model), state.index)

    # A (best), B and C fill 8 GPUs; P (4 GPUs) outranks B and C. Freeing C and B gives 6; B
    # alone gives the 4 P needs, so C is spared and keeps running.
    trace = Trace("prio", [Job("A", 0, 2, 100, "0"), Job("B", 0, 4, 100, "5"),
                           Job("C", 0, 2, 100, "6"), Job("P", 1, 4, 10, "3")])
    result = simulate(trace, ClusterSpec(1, 1, 8), ByModel(), restart_cost=0.0)
    assert result.finish.tolist() == [100, 110, 100, 11]
    assert result.preemptions.tolist() == [0, 1, 0, 0]


def test_gandiva_round_robins_quanta():
    # Quantum 2 s: A's first slice ends at 2, B (no slices yet) runs 2-4, C 4-5, A resumes 5-13.
    assert finishes(make_policy("gandiva", quantum=2.0)) == [13, 4, 5]


def test_gandiva_swaps_all_jobs_at_round_ends_one_event_per_round():
    # 20 one-GPU jobs of 1,000 s on 4 GPUs, 100 s rounds: every swap happens at a multiple of
    # 100 s, so the events are the arrivals, the completions and at most one per round
    trace = jobs(*[(0.0, 1, 1000.0)] * 20)
    result = simulate(trace, ClusterSpec(1, 1, 4), make_policy("gandiva", quantum=100.0),
                      restart_cost=0.0)
    result.check_conservation()
    assert all(seg.start % 100 == 0 for seg in result.segments)
    assert result.events <= 1 + 20 + result.makespan / 100
    assert result.finish.max() == 5000 and result.preemptions.sum() > 20


def test_restart_cost_delays_a_resumed_job():
    result = simulate(THREE, ONE_GPU, "srtf", restart_cost=0.5)
    result.check_conservation()
    assert result.finish.tolist() == [13.5, 3, 4]
    assert result.preemptions.tolist() == [1, 0, 0]


EASY = jobs((0, 2, 10), (1, 4, 5), (2, 1, 3), (3, 1, 20))
FOUR_GPUS = ClusterSpec(1, 1, 4)


def test_easy_backfills_only_what_does_not_delay_the_reserved_head():
    # J1 (4 GPUs) is reserved for t=10; J2 ends at 5 and may jump ahead; J3 would end at 23 and
    # may not, so it waits for J1.
    assert finishes("easy", EASY, FOUR_GPUS) == [10, 15, 5, 35]


def test_greedy_skipping_fifo_starves_the_large_job_that_easy_protects():
    assert finishes("fifo", EASY, FOUR_GPUS) == [10, 28, 5, 23]
    strict = make_policy("fifo", skip_blocked=False)
    assert finishes(strict, EASY, FOUR_GPUS) == [10, 15, 18, 35]


@pytest.mark.parametrize("policy", ["sjf", "srtf"])
def test_shortest_first_is_optimal_on_one_gpu(policy):
    # All jobs at t=0: mean JCT of shortest-first is sum_i (n - i) w_(i) / n, the minimum over all
    # orders (Smith's rule); no FIFO order of the same jobs does better.
    work = [7.0, 3.0, 11.0, 1.0, 5.0, 2.0]
    trace = jobs(*[(0, 1, w) for w in work])
    got = np.mean(finishes(policy, trace))
    n, w = len(work), sorted(work)
    assert got == pytest.approx(sum((n - i) * w[i] for i in range(n)) / n)
    best_fifo = min(np.mean(np.cumsum(order)) for order in itertools.permutations(work))
    assert got == pytest.approx(best_fifo)


def test_only_jobs_spread_over_more_nodes_than_they_need_run_slower():
    spec = ClusterSpec(1, 2, 4)
    # 3 + 3 GPUs fill most of both nodes; the 2-GPU job then spans two nodes where one would do
    trace = jobs((0, 3, 10), (0, 3, 10), (0, 2, 10))
    assert simulate(trace, spec, "fifo", spread_slowdown=1.5).finish.tolist() == [10, 10, 15]
    # an 8-GPU job on two 4-GPU nodes uses the fewest nodes it can: not slowed
    assert simulate(jobs((0, 8, 10)), spec, "fifo", spread_slowdown=1.5).finish.tolist() == [10]
    spread = simulate(jobs((0, 2, 10)), spec, "fifo", placement="spread", spread_slowdown=1.5)
    assert spread.finish.tolist() == [15]


def test_switch_slowdown_compounds_when_a_job_spans_more_switches_than_it_needs():
    spec = ClusterSpec(2, 1, 4)
    options = {"spread_slowdown": 1.5, "switch_slowdown": 2.0}
    assert simulate(jobs((0, 8, 10)), spec, "fifo", **options).finish.tolist() == [10]
    spread = simulate(jobs((0, 2, 10)), spec, "fifo", placement="spread", **options)
    assert spread.finish.tolist() == [30]


@pytest.fixture(scope="module")
def busy_trace():
    return synthetic_trace(400, jobs_per_hour=60, max_gpus=32, seed=3)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_conserves_jobs_work_and_gpus(name, busy_trace):
    result = simulate(busy_trace, ClusterSpec(1, 4, 8), name, restart_cost=20.0)
    result.check_conservation()  # each job finishes once; GPU-seconds add up; no double booking
    assert result.gpu_seconds() >= float((result.work * result.gpus).sum())
    row = summarize(result)
    assert row["jobs"] == 400 and 0 < row["utilization"] <= 1


def test_preemptive_policies_beat_fifo_on_a_heavy_tailed_trace(busy_trace):
    spec = ClusterSpec(1, 4, 8)
    jct = {p: summarize(simulate(busy_trace, spec, p))["avg_jct"] for p in ("fifo", "srtf", "las")}
    assert jct["srtf"] < jct["las"] < jct["fifo"]


def test_runs_are_deterministic(busy_trace):
    spec = ClusterSpec(1, 4, 8)
    a, b = (simulate(busy_trace, spec, "themis") for _ in range(2))
    assert np.array_equal(a.finish, b.finish) and a.segments == b.segments


def test_a_policy_written_in_a_few_lines_plugs_in():
    class LargestFirst(Policy):
        name = "largest-first"

        def key(self, state, now):
            return (-state.gpus, state.job.arrival, state.index)

    trace = jobs((0, 4, 5), (1, 1, 1), (1, 4, 1))
    assert finishes(LargestFirst(), trace, FOUR_GPUS) == [5, 7, 6]


def test_conservation_check_catches_double_booking():
    result = simulate(jobs((0, 1, 1), (0, 1, 1)), ClusterSpec(1, 1, 2), "fifo")
    a, b = result.segments
    result.segments = [a, b._replace(gpus=a.gpus)]
    with pytest.raises(AssertionError, match="double-booked"):
        result.check_conservation()


def test_unknown_policy_and_bad_options_are_named():
    with pytest.raises(ValueError, match="unknown policy 'lifo'"):
        make_policy("lifo")
    with pytest.raises(ValueError, match="thresholds"):
        make_policy("las", thresholds=(10, 5))
    with pytest.raises(ValueError, match="quantum"):
        make_policy("gandiva", quantum=0)
    with pytest.raises(ValueError, match="restart_cost"):
        Simulation(THREE, ONE_GPU, make_policy("fifo"), restart_cost=-1)
    with pytest.raises(ValueError, match="needs 2 GPUs but the cluster has only 1"):
        simulate(jobs((0, 2, 1)), ONE_GPU, "fifo")


def test_gittins_index_of_a_two_point_distribution():
    # S is 1 or 10 with equal odds. Fresh job: serving 1 s finishes half the jobs for 1 s of
    # expected service (0.5), better than serving to 10 (1 / 5.5). Past 1 s only the 10 s job
    # remains: index 1 / 9.
    assert gittins_index(np.array([1.0, 10.0]), 0.0) == pytest.approx(0.5)
    assert gittins_index(np.array([1.0, 10.0]), 1.0) == pytest.approx(1 / 9)
    assert gittins_index(np.array([1.0, 10.0]), 10.0) == 0.0


def test_gittins_serves_fresh_jobs_first_when_most_jobs_are_short():
    # History says jobs take 1 or 10 GPU-s. A job past 1 s is a 10 s job; a new arrival has a
    # 50% chance of being short, so it preempts the old one.
    policy = make_policy("gittins", samples=[1.0, 10.0] * 50, bins=4)
    assert finishes(policy, jobs((0, 1, 10), (2, 1, 1))) == [11, 3]
    with pytest.raises(ValueError, match="samples"):
        make_policy("gittins", samples=[0.0, 1.0])


@pytest.mark.parametrize("policy", ["las", "gittins", "gandiva"])
def test_priority_changes_with_nobody_waiting_cost_no_events(policy):
    """A lone long job crosses every priority threshold, but with nothing waiting no decision can
    change, so the simulation is its arrival and its completion only (the 100k-job speed needs it)."""
    result = simulate(jobs((0.0, 1, 1e6)), ONE_GPU, policy)
    assert result.events == 2
    assert result.jct == pytest.approx([1e6])


@pytest.mark.parametrize(("policy", "option"), [("gandiva", "quantum"), ("themis", "lease")])
@pytest.mark.parametrize("bad", [0.0, -5.0, float("inf"), float("nan")])
def test_time_options_must_be_finite_and_positive(policy, option, bad):
    with pytest.raises(ValueError, match=f"{option} must be a finite time > 0 s, got {bad}"):
        make_policy(policy, **{option: bad})
