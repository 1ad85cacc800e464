"""The serving simulator against queueing theory's closed forms, and its batching semantics.

Closed-form checks use independent replications (fixed seeds): the mean queue wait of each
replication, its first 10% dropped as warm-up, and a 99% Student-t confidence interval over
replications, which must contain the closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mlsys.serve.loadgen import poisson_arrivals
from mlsys.serve.policy import BatchPolicy, MaxSizeMaxWait, NoBatching, dispatch, wait
from simulators.serving import (
    Affine,
    Autoscaler,
    Deterministic,
    Empirical,
    Exponential,
    erlang_c,
    md1_wait,
    mg1_wait,
    mm1_sojourn_quantile,
    mm1_wait,
    mmc_wait,
    simulate,
)
from simulators.serving.service import Replayed

REPLICATIONS, REQUESTS = 6, 15_000


def replicated_wait(lam: float, service, servers: int = 1) -> tuple[float, float]:
    """Mean queue wait over replications and the half-width of its 99% confidence interval."""
    means = []
    for seed in range(REPLICATIONS):
        arrivals = poisson_arrivals(lam, REQUESTS, seed=100 + seed)
        wait = simulate(arrivals, NoBatching(), service, servers, seed=seed).queue_wait
        means.append(wait[REQUESTS // 10:].mean())
    half = stats.t.ppf(0.995, REPLICATIONS - 1) * np.std(means, ddof=1) / math.sqrt(REPLICATIONS)
    return float(np.mean(means)), float(half)


@pytest.mark.parametrize("case", ["M/M/1", "M/D/1", "M/G/1", "M/M/3"])
def test_mean_wait_matches_the_closed_form_within_its_confidence_interval(case: str) -> None:
    mu, rho = 1000.0, 0.6
    if case == "M/M/1":
        service, servers, expected = Exponential(1 / mu), 1, mm1_wait(rho * mu, mu)
    elif case == "M/D/1":
        service, servers, expected = Deterministic(1 / mu), 1, md1_wait(rho * mu, mu)
    elif case == "M/G/1":  # two-point service times: 0.5 ms or 2 ms, mean 1 ms
        service = Empirical({1: [0.0005, 0.0005, 0.002]})
        servers, expected = 1, mg1_wait(rho * mu, service.mean(1), service.second_moment(1))
    else:  # waits are rarer with three servers: a higher load keeps the interval tight
        rho = 0.75
        service, servers, expected = Exponential(1 / mu), 3, mmc_wait(3 * rho * mu, mu, 3)
    mean, half = replicated_wait(servers * rho * mu, service, servers)
    assert abs(mean - expected) <= half, f"{case}: simulated {mean:.3e} +- {half:.1e}, closed {expected:.3e}"
    assert half < 0.25 * expected  # the interval is narrow enough to mean something


def test_closed_forms_agree_with_each_other_and_textbook_values() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # Kleinrock's two-server example
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # one server: the probability of waiting is rho
    assert mmc_wait(700, 1000, 1) == pytest.approx(mm1_wait(700, 1000))
    assert md1_wait(700, 1000) == pytest.approx(mm1_wait(700, 1000) / 2)
    assert mg1_wait(700, 1e-3, 2e-6) == pytest.approx(mm1_wait(700, 1000))  # exponential moments
    assert mm1_sojourn_quantile(700, 1000, 0.99) == pytest.approx(math.log(100) / 300)
    with pytest.raises(ValueError, match="grows without bound"):
        mm1_wait(1000, 1000)
    with pytest.raises(ValueError, match="offered load"):
        erlang_c(2, 2.0)


def test_sojourn_p99_of_mm1_matches_the_exponential_quantile() -> None:
    arrivals = poisson_arrivals(500, 40_000, seed=7)
    latency = simulate(arrivals, NoBatching(), Exponential(1e-3), seed=3).latency[4000:]
    assert np.percentile(latency, 99) == pytest.approx(mm1_sojourn_quantile(500, 1000, 0.99), rel=0.1)


def test_batches_fill_or_leave_at_the_deadline() -> None:
    arrivals = np.array([0.0, 0.001, 0.002, 0.003, 0.004, 0.020])
    result = simulate(arrivals, MaxSizeMaxWait(4, 0.010), Deterministic(0.005))
    # four arrive by 3 ms: a full batch at 3 ms; the fifth waits its 10 ms alone (the replica is
    # free again at 8 ms); the sixth arrives at 20 ms and waits until 30 ms.
    np.testing.assert_allclose(result.batches[:, :3], [[0.003, 0.008, 4], [0.014, 0.019, 1],
                                                      [0.030, 0.035, 1]])
    np.testing.assert_allclose(result.latency, [0.008, 0.007, 0.006, 0.005, 0.015, 0.015])
    trace = result.to_recorder().to_chrome_trace()
    assert [e["name"] for e in trace["traceEvents"] if e["ph"] == "X"] == ["batch of 4", "batch of 1",
                                                                          "batch of 1"]


def test_a_wait_shorter_than_the_clock_resolution_still_moves_time_on() -> None:
    class Hesitant(BatchPolicy):  # waits too short to move a float clock at 1 s, twice
        max_batch_size = 4

        def __init__(self) -> None:
            self.asked: list[float] = []

        def decide(self, state):
            self.asked.append(state.now)
            assert len(self.asked) < 100, "asked again and again at one instant"
            return wait(1e-18) if len(set(self.asked)) < 3 else dispatch(len(state.arrivals))

    policy = Hesitant()
    result = simulate(np.array([1.0]), policy, Deterministic(1e-3))
    assert len(policy.asked) == 3 and result.dispatch[0] - 1.0 == pytest.approx(2e-9)


def test_batches_grow_while_replicas_are_busy_and_pay_off_in_throughput() -> None:
    arrivals = poisson_arrivals(4000, 8000, seed=1)
    cost = Affine(0.0005, 0.00005)  # 1 request: 550 us, so one at a time saturates at ~1800/s
    one = simulate(arrivals, NoBatching(), cost, max_queue=500)
    batched = simulate(arrivals, MaxSizeMaxWait(16, 0.0), cost, max_queue=500)
    assert one.summary()["rejected"] > 0 and batched.summary()["rejected"] == 0
    assert batched.summary()["mean_batch"] > 1.5
    assert batched.summary()["p99_ms"] < 10


def test_a_full_queue_refuses_arrivals_and_keeps_fifo_order() -> None:
    arrivals = np.arange(10) * 1e-6  # a burst: one is served, three wait, six are refused
    result = simulate(arrivals, NoBatching(), Deterministic(1.0), max_queue=3)
    assert result.admitted.tolist() == [True] * 4 + [False] * 6
    np.testing.assert_allclose(result.dispatch[:4], [0.0, 1.0, 2.0, 3.0])


def test_autoscaler_adds_replicas_after_the_start_up_delay() -> None:
    quiet, busy = poisson_arrivals(100, 300, seed=2), 3 + poisson_arrivals(2500, 10_000, seed=3)
    arrivals = np.concatenate([quiet, busy])
    scaler = Autoscaler(min_replicas=1, max_replicas=4, interval=0.5, startup_delay=2.0, scale_up_queue=8)
    result = simulate(np.sort(arrivals), NoBatching(), Deterministic(1e-3), autoscaler=scaler)
    counts = dict(result.replica_series)
    grown = [t for t, n in result.replica_series if n > 1]
    assert grown and grown[0] >= 3 + 2.0  # the load starts at 3 s; a replica takes 2 s to start
    assert max(counts.values()) > 1 and result.admitted.all()


def test_replayed_service_times_follow_the_run_in_time() -> None:
    replay = Replayed(np.array([0.0, 1.0, 2.0]), np.array([1, 1, 2]), np.array([0.01, 0.05, 0.02]),
                      np.array([0.004, 0.004, 0.008]), Affine(0.002, 0.002))
    rng = np.random.default_rng(0)
    assert replay.sample(1, rng, 0.9) == pytest.approx(0.05)
    # batch of 3 at t=2: the real batch of 2 computed 8 ms; compute scales by s(3)/s(2) = 8/6
    assert replay.sample(3, rng, 2.4) == pytest.approx(0.012 + 0.008 * 8 / 6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(arrivals=[]), "non-empty"),
    (dict(arrivals=[1.0, 0.5]), "sorted"),
    (dict(replicas=0), "replicas"),
    (dict(max_queue=0), "max_queue"),
    (dict(overhead=[0.1, 0.2]), "one per request"),
    (dict(overhead=-1.0), "overhead"),
    (dict(policy="fifo"), "BatchPolicy"),
])
def test_bad_inputs_are_refused_with_clear_errors(kwargs: dict, message: str) -> None:
    args = dict(arrivals=[0.0, 0.1, 0.2], policy=NoBatching(), service=Deterministic(0.01))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        simulate(**args)
