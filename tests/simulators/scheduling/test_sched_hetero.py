"""Gavel's heterogeneity-aware policies against hand-solved allocations and their agnostic twins."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.data import data_path
from simulators.scheduling import Job, Trace, read_trace
from simulators.scheduling.hetero import (
    GPU_TYPES,
    FinishTimeFairness,
    MaxMinFairness,
    compare,
    rate_matrix,
    replay_hetero,
    throughput_table,
)
from simulators.scheduling.hetero.policies import type_blind_shares

COUNTS = np.array([1.0, 1.0, 1.0])  # one K80, one P100, one V100


def test_aware_max_min_gives_each_job_the_type_it_is_fastest_on():
    # job 0 runs 10x faster on the K80 than elsewhere, job 1 on the V100: the aware allocation
    # gives each its own type all the time; the agnostic one spreads both over every type
    rates = np.array([[10.0, 1.0, 1.0], [1.0, 1.0, 10.0]])
    scale = np.array([1.0, 1.0])
    aware = MaxMinFairness().allocate(rates, scale, COUNTS)
    assert aware[0, 0] == pytest.approx(1.0) and aware[1, 2] == pytest.approx(1.0)
    assert (aware.sum(axis=1) <= 1 + 1e-9).all() and ((aware * scale[:, None]).sum(axis=0) <= 1 + 1e-9).all()
    blind = MaxMinFairness(aware=False).allocate(rates, scale, COUNTS)
    np.testing.assert_allclose(blind, np.full((2, 3), 1 / 3))
    assert ((rates * aware).sum(axis=1) > (rates * blind).sum(axis=1)).all()


def test_type_blind_shares_give_equal_gpu_time_by_water_filling():
    # 4 GPUs, jobs of 1, 1 and 4 GPUs: equal GPU-time c = 4/3 would give the 1-GPU jobs more
    # than a whole GPU, so they get 1 each and the 4-GPU job the 2 GPUs left (half its time)
    x = type_blind_shares(np.array([1.0, 1.0, 4.0]), np.array([0.0, 0.0, 4.0]))
    np.testing.assert_allclose(x.sum(axis=1), [1.0, 1.0, 0.5])


def test_finish_time_fairness_keeps_every_rho_at_most_the_equal_shares_and_uses_affinity():
    rates = np.array([[10.0, 1.0, 1.0], [1.0, 1.0, 10.0], [2.0, 2.0, 2.0]])
    scale = np.ones(3)
    state = {"remaining": np.array([100.0, 100.0, 100.0]), "age": np.zeros(3),
             "isolated_time": np.zeros(3)}
    x = FinishTimeFairness().allocate(rates, scale, COUNTS, **state)
    iso = (rates / 3).sum(axis=1)                    # a third of each type

    def worst(alloc):
        return float((iso / (rates * alloc).sum(axis=1)).max())

    # job 2 runs at 2 steps/s anywhere, so no allocation beats its equal share (rho = 1); the
    # others then get the types they are fast on, finishing sooner than on equal shares
    assert worst(x) == pytest.approx(1.0, rel=0.02)
    assert x[0, 0] > 0.9 and x[1, 2] > 0.9
    assert ((rates * x).sum(axis=1)[:2] > 2 * (rates / 3).sum(axis=1)[:2]).all()
    assert ((x * scale[:, None]).sum(axis=0) <= 1 + 1e-6).all()


def test_unmeasured_scale_factors_scale_linearly_and_zero_rates_stay_zero():
    table = throughput_table()
    trace = Trace("t", [Job("a", 0, 16, 100.0, "ResNet-18 (batch size 32)"),
                        Job("b", 0, 2, 100.0, "ResNet-50 (batch size 128)")])
    rates = rate_matrix(trace, table)
    v100 = GPU_TYPES.index("v100")
    assert rates[0, v100] == pytest.approx(2 * table["v100"][("ResNet-18 (batch size 32)", 8)])
    assert rates[1, GPU_TYPES.index("k80")] == 0.0   # Gavel measured it cannot run there


@pytest.fixture(scope="module")
def philly_single():
    """The first 120 jobs of Gavel's single-GPU Philly virtual cluster, on 4 GPUs of each type."""
    return read_trace(data_path("traces/gavel_philly/philly_vc_traces/ed69ec.trace")).head(120)


def test_heterogeneity_awareness_cuts_average_jct_like_gavel(philly_single):
    # Gavel: "up to 3.5x" better average JCT than heterogeneity-agnostic policies (abstract)
    counts = dict(k80=4, p100=4, v100=4)
    results = compare(philly_single, counts, [MaxMinFairness(False), MaxMinFairness(True)])
    blind, aware = (results[name].jct.mean() for name in ("max-min fairness (agnostic)",
                                                           "max-min fairness"))
    assert 1.1 < blind / aware <= 3.5
    for result in results.values():
        assert np.isfinite(result.finish).all() and (result.finish >= result.arrival).all()


def test_bad_clusters_are_named(philly_single):
    with pytest.raises(ValueError, match="counts must give GPUs"):
        replay_hetero(philly_single, {"v100": 4}, MaxMinFairness())
    big = Trace("big", [Job("x", 0, 8, 10.0, "ResNet-18 (batch size 32)")])
    with pytest.raises(ValueError, match="needs 8 GPUs of one type"):
        replay_hetero(big, dict(k80=4, p100=4, v100=4), MaxMinFairness())
