"""Elastic scheduling against the Pollux artifact: its measurements, its workloads, its results.

The artifact's own simulator gave every job of its eight workloads a completion time under Pollux,
Optimus+Oracle+TunedJobs and Tiresias+TunedJobs (shipped in ``pollux_philly/results``). Tolerance:
each policy's mean JCT within 25% of the artifact's on the same workload, and the same ordering
(Pollux < Tiresias < Optimus). Workload 3 is the quickest to replay; ``mlsys bench sim`` replays
all eight.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulators.scheduling.elastic import (
    POLICIES,
    ElasticJob,
    Optimus,
    Pollux,
    Tiresias,
    artifact_jcts,
    load_application,
    read_workload,
    replay,
)
from simulators.scheduling.elastic.goodput import best_config, gain, split_batch
from simulators.scheduling.elastic.simulator import assign_nodes


def test_measured_placements_are_read_back_exactly():
    app = load_application("cifar10")
    measured = app.placements[(1, 1, 2)]            # the artifact's placement 112
    bsz, step, sync = measured[len(measured) // 2]
    assert app.step_time((2, 1, 1), bsz) == pytest.approx((step, sync))   # node order is irrelevant
    # between two measured batch sizes: linear, and bounded by its neighbours
    (b0, s0, _), (b1, s1, _) = measured[:2]
    assert app.step_time((1, 1, 2), (b0 + b1) / 2)[0] == pytest.approx((s0 + s1) / 2)
    # an unmeasured spread (8 nodes of 1 GPU) is interpolated between measured ones, never NaN
    assert np.isfinite(app.step_time((1,) * 8, 64)).all()
    assert app.total_progress == pytest.approx(app.progress_at(100)) and app.max_epochs == 100


def test_statistical_efficiency_follows_the_gradient_noise_scale():
    # gain = (var + sqr) / (var / s + sqr): the no-noise limit gains nothing from a larger batch,
    # the pure-noise limit gains linearly (perfect scaling), at s = 1 the gain is 1
    assert gain(128, 128, 1.0, 3.0) == pytest.approx(1.0)
    assert gain(1024, 128, 1.0, 0.0) == pytest.approx(1.0)
    assert gain(1024, 128, 0.0, 1.0) == pytest.approx(8.0)
    assert gain(1024, 128, 1.0, 1.0) == pytest.approx(2 / (1 / 8 + 1))


def test_a_larger_noise_scale_lets_pollux_pick_a_larger_batch():
    app = load_application("cifar10")
    placement = (4, 4)
    early = best_config(app, placement, app.grad_stats(128, 0))[1]
    late = best_config(app, placement, app.grad_stats(128, 90))[1]
    assert app.grad_stats(128, 90)[1] / app.grad_stats(128, 90)[0] > \
        app.grad_stats(128, 0)[1] / app.grad_stats(128, 0)[0]
    assert late > early
    atomic, accum = split_batch(app, 4096, 2)          # 2048 per GPU: accumulate in 2 steps
    assert (atomic, accum) == (1024, 1)


def test_a_job_finishes_when_its_epochs_are_done_and_restarts_cost_time():
    app = load_application("ncf")
    lone = ElasticJob("ncf-0", app, 0.0, batch_size=32768)
    lone.reallocate((0,), 0.0, restart=30.0)
    now = 0.0
    while lone.finish is None:
        lone.advance(now, 60.0)
        now += 60.0
    rate = lone.goodput()
    assert lone.epoch == app.max_epochs and lone.restarts == 0
    # ten epochs of progress at the measured goodput, after the 30 s restore
    assert lone.finish == pytest.approx(30.0 + app.total_progress / rate, rel=0.05)


def test_nodes_are_kept_packed_or_spread_as_asked():
    app = load_application("cifar10")
    a, b, c = (ElasticJob(n, app, 0.0) for n in "abc")
    packed = assign_nodes({a: 2, b: 2, c: 4}, nodes=3, pack=True)
    assert packed[c] == (0, 0, 0, 0) and packed[a] == packed[b] == (1, 1)
    spread = assign_nodes({a: 2, b: 2, c: 4}, nodes=3, pack=False)
    assert len(set(spread[c])) == 1 and set(spread[a]) != set(spread[b])


@pytest.fixture(scope="module")
def workload3():
    out = {}
    for name, cls in POLICIES.items():
        policy = cls()
        out[name] = replay(read_workload(3, policy), policy)
    return out


def test_policies_match_the_artifact_within_25_percent_and_in_order(workload3):
    ours = {name: result.summary()["avg_jct"] for name, result in workload3.items()}
    reference = {name: np.mean(list(artifact_jcts(name, 3).values())) for name in workload3}
    for name in ours:
        assert ours[name] == pytest.approx(reference[name], rel=0.25), name
    assert ours["pollux"] < ours["tiresias"] < ours["optimus"]
    assert reference["pollux"] < reference["tiresias"] < reference["optimus"]


def test_every_job_finishes_once_and_elastic_jobs_change_size(workload3):
    for name, result in workload3.items():
        names = {job.name for job in result.jobs}
        assert names == set(artifact_jcts(name, 3)) and len(names) == 160
        assert (result.jct > 0).all() and (result.busy <= result.gpus).all()
    sizes = {g for job in workload3["pollux"].jobs for _, g, _ in job.history if g}
    batches = {b for job in workload3["pollux"].jobs for _, _, b in job.history if b}
    assert len(sizes) > 4 and len(batches) > 10        # GPUs and batch sizes both adapt
    fixed = {job.name: {g for _, g, _ in job.history if g} for job in workload3["tiresias"].jobs}
    assert all(len(g) <= 1 for g in fixed.values())    # Tiresias: the tuned GPU count, or none


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="workloads 1 to 8, got 9"):
        read_workload(9, Pollux())
    with pytest.raises(ValueError, match="unknown application 'gpt'"):
        load_application("gpt")
    with pytest.raises(ValueError, match="unknown policy 'gandiva'"):
        artifact_jcts("gandiva", 1)
    with pytest.raises(ValueError, match="fairness must be"):
        Pollux(fairness=0.5)
    with pytest.raises(ValueError, match="threshold must be"):
        Tiresias(threshold=-1)
    jobs = read_workload(1, Optimus())[:2]
    with pytest.raises(ValueError, match="interval must be > 0"):
        replay(jobs, Optimus(), interval=0)
