"""The same fit on real processes (all-reduce, parameter server) and on a Dask cluster: bitwise
the model of one process summing the same partitions, the bytes the patterns move, spans that
tell the superstep's story, and failures that surface instead of hanging."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from mlsys.classic import (
    HistogramGBDT,
    KMeans,
    LogisticRegressionSGD,
    quantile_edges,
    run_allreduce,
    run_dask,
    run_local,
    run_parameter_server,
    split,
)
from mlsys.classic.kmeans import KMeansPartition
from mlsys.comm import WorkerError


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), y


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as dask_client:
        yield dask_client


def _same_kmeans(a, b) -> bool:
    return np.array_equal(a.centroids, b.centroids) and a.inertia == b.inertia


@pytest.mark.parametrize("workers", [2, 3])
def test_kmeans_is_bitwise_the_same_on_real_processes(cancer, workers: int) -> None:
    x, _ = cancer
    algorithm = KMeans(x[[0, 100, 200, 300]], iterations=6)
    parts = split(workers, x)
    reference = run_local(algorithm, parts)
    single = run_local(algorithm, split(1, x))
    for run in (run_allreduce(algorithm, parts), run_parameter_server(algorithm, parts)):
        assert _same_kmeans(run.model, reference.model), run.way
        np.testing.assert_allclose(run.model.centroids, single.model.centroids, rtol=1e-12,
                                   atol=1e-14)
    k, d = algorithm.init.shape
    stats, decision = 8 * (k * d + k + 1), 8 * k * d
    allreduce, server = run_allreduce(algorithm, parts), run_parameter_server(algorithm, parts)
    # the compiled all-reduce moves what the direct schedule moves: 2 (p - 1) buffers in all
    assert allreduce.bytes_moved == 6 * 2 * (workers - 1) * stats
    # every worker pushes every step and pulls every decision but the last
    assert server.bytes_moved == 6 * workers * stats + 5 * workers * decision
    assert (server.statistics_bytes, server.decision_bytes) == (stats, decision)


def test_gbdt_and_logistic_regression_on_real_processes(cancer) -> None:
    x, y = cancer
    parts = split(2, x, y)
    gbdt = HistogramGBDT(quantile_edges(x, 16), trees=3, depth=3)
    single = run_local(gbdt, split(1, x, y)).model
    for run in (run_allreduce(gbdt, parts), run_parameter_server(gbdt, parts)):
        assert run.model.splits() == single.splits()
        for a, b in zip(run.model.values, run_local(gbdt, parts).model.values):
            assert np.array_equal(a, b)
    logistic = LogisticRegressionSGD(x.shape[1], len(x), steps=20, batch_size=64)
    reference = run_local(logistic, parts).model.weights
    assert np.array_equal(run_allreduce(logistic, parts).model.weights, reference)
    assert np.array_equal(run_parameter_server(logistic, parts).model.weights, reference)


def test_spans_show_the_superstep(cancer) -> None:
    x, _ = cancer
    run = run_allreduce(KMeans(x[:3], iterations=4), split(2, x))
    for worker in ("worker 0", "worker 1"):
        mine = sorted((s for s in run.spans if s.worker == worker), key=lambda s: s.start)
        assert [s.kind for s in mine[:4]] == ["compute", "wait", "comm", "update"]
        assert all(a.end <= b.start + 1e-9 for a, b in zip(mine, mine[1:]))  # one thing at a time
    # the all-reduce is a barrier: no worker leaves it before the last one arrived
    for step in range(4):
        arrived = max(s.end for s in run.spans if s.step == step and s.kind == "compute")
        assert all(s.end >= arrived - 1e-9 for s in run.spans if s.step == step and s.kind == "comm")
    server = run_parameter_server(KMeans(x[:3], iterations=4), split(2, x))
    assert {s.worker for s in server.spans} == {"server", "worker 0", "worker 1"}
    assert server.time_in("compute") > 0 and 0 < server.seconds_per_step < server.seconds


def test_dask_gives_the_same_models(cancer, client) -> None:
    x, y = cancer
    parts = split(3, x, y)  # three partitions on two workers
    kmeans = KMeans(x[[0, 100, 200]], iterations=4)
    reference = run_local(kmeans, parts).model
    for reduce in ("driver", "shuffle"):
        run = run_dask(kmeans, parts, client, reduce=reduce)
        assert _same_kmeans(run.model, reference), reduce
        assert run.bytes_moved == 4 * 3 * run.statistics_bytes + 3 * 3 * run.decision_bytes
    gbdt = HistogramGBDT(quantile_edges(x, 16), trees=2, depth=2)
    run = run_dask(gbdt, parts, client)
    assert run.model.splits() == run_local(gbdt, split(1, x, y)).model.splits()
    workers = {s.worker for s in run.spans}
    assert {"driver", "worker 0", "worker 1"} <= workers
    assert run.time_in("compute") > 0  # from Dask's own task stream


def test_bad_calls_and_failing_workers_surface(cancer, client) -> None:
    x, _ = cancer
    kmeans = KMeans(x[:2], iterations=3)
    with pytest.raises(ValueError, match="at least 2 partition"):
        run_allreduce(kmeans, split(1, x))
    with pytest.raises(ValueError, match="unknown all-reduce algorithm 'fast'"):
        run_allreduce(kmeans, split(2, x), collective="fast")
    with pytest.raises(ValueError, match="reduce must be one of"):
        run_dask(kmeans, split(2, x), client, reduce="tree")
    with pytest.raises(TypeError, match="expected an mlsys.classic Algorithm"):
        run_local(object(), split(2, x))

    class Broken(KMeans):
        def partition(self, part):
            if part["rows"][0] > 0:
                raise RuntimeError("disk failed")
            return KMeansPartition(part["x"], self.init)

    for run in (run_allreduce, run_parameter_server):
        with pytest.raises(WorkerError, match="disk failed"):
            run(Broken(x[:2], iterations=3), split(2, x), timeout=10.0)
