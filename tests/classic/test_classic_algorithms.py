"""The three classic algorithms in one process: against scikit-learn, brute force, finite
differences, and against themselves on any partitioning of the data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from mlsys.classic import (
    HistogramGBDT,
    KMeans,
    LogisticRegressionSGD,
    bin_features,
    quantile_edges,
    run_local,
    split,
)
from simulators.data import data_path, open_text


@pytest.fixture(scope="module")
def seeds() -> np.ndarray:
    path = data_path("datasets/uci_seeds/seeds.csv")
    note = (path.parent / "SOURCE.md").read_text()
    assert "Origin" in note and "CC BY 4.0" in note
    raw = np.loadtxt(open_text(path), delimiter=",", skiprows=1)
    assert raw.shape == (210, 8) and np.bincount(raw[:, 7].astype(int)).tolist() == [0, 70, 70, 70]
    x = raw[:, :7]
    return (x - x.mean(0)) / x.std(0)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), y


def _shuffled(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order], y[order]


def test_kmeans_is_lloyd_as_scikit_learn_runs_it(seeds: np.ndarray) -> None:
    init = seeds[[0, 70, 140]]
    fit = run_local(KMeans(init, iterations=20), split(1, seeds)).model
    reference = SklearnKMeans(3, init=init, n_init=1, max_iter=20, tol=0.0,
                              algorithm="lloyd").fit(seeds)
    np.testing.assert_allclose(fit.centroids, reference.cluster_centers_, rtol=0, atol=1e-12)
    assert np.array_equal(fit.predict(seeds), reference.labels_)
    assert all(b <= a + 1e-9 for a, b in zip(fit.inertia, fit.inertia[1:]))  # Lloyd never worsens
    assert fit.inertia[-1] == pytest.approx(reference.inertia_, rel=1e-12)


def test_kmeans_partitions_change_only_the_rounding(seeds: np.ndarray) -> None:
    algorithm = KMeans(seeds[[5, 80, 150]], iterations=8)
    single = run_local(algorithm, split(1, seeds)).model
    for parts in (2, 3, 7):
        model = run_local(algorithm, split(parts, seeds)).model
        np.testing.assert_allclose(model.centroids, single.centroids, rtol=1e-12, atol=1e-14)


def test_kmeans_keeps_the_centroid_of_an_empty_cluster() -> None:
    x = np.array([[0.0], [0.1], [1.0]])
    model = run_local(KMeans([[0.0], [1.0], [50.0]], iterations=2), split(1, x)).model
    assert model.centroids[2, 0] == 50.0 and model.centroids[0, 0] == pytest.approx(0.05)


def test_logistic_statistics_are_the_gradient_of_the_summed_loss(cancer) -> None:
    x, y = cancer
    algorithm = LogisticRegressionSGD(x.shape[1], len(x), steps=1, batch_size=128)
    rng = np.random.default_rng(1)
    weights = rng.normal(scale=0.3, size=x.shape[1] + 1)
    partition = algorithm.partition(split(1, x, y)[0]).apply(weights, 0)
    stats = partition.statistics(0)
    gradient, loss, count = stats[:-2], stats[-2], stats[-1]
    assert count == 128
    eps = 1e-6
    for j in rng.choice(len(weights), 6, replace=False):
        bump = np.zeros_like(weights)
        bump[j] = eps
        up = partition.apply(weights + bump, 0).statistics(0)[-2]
        down = partition.apply(weights - bump, 0).statistics(0)[-2]
        assert gradient[j] == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-6)
    assert loss > 0


def test_logistic_minibatches_do_not_depend_on_the_partitioning(cancer) -> None:
    x, y = cancer
    algorithm = LogisticRegressionSGD(x.shape[1], len(x), steps=30, batch_size=50, lr=0.3, l2=1e-3)
    single = run_local(algorithm, split(1, x, y)).model
    for parts in (2, 5):
        model = run_local(algorithm, split(parts, x, y)).model
        np.testing.assert_allclose(model.weights, single.weights, rtol=1e-10, atol=1e-13)
    rows = np.arange(len(x))
    epoch = algorithm.batch_of(rows, 0)
    per_epoch = len(x) // 50
    assert np.bincount(epoch[epoch < per_epoch]).tolist() == [50] * per_epoch  # each row once


def test_logistic_sgd_reaches_scikit_learns_accuracy(cancer) -> None:
    x, y = cancer
    model = run_local(LogisticRegressionSGD(x.shape[1], len(x), steps=400, batch_size=64, lr=0.3),
                      split(1, x, y)).model
    reference = LogisticRegression(max_iter=1000).fit(x, y).score(x, y)
    assert (model.predict(x) == y).mean() >= reference - 0.01
    assert np.mean(model.losses[-20:]) < 0.5 * model.losses[0]


def test_gbdt_stump_is_the_brute_force_best_split() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4))
    y = np.where(x[:, 2] > 0.3, 2.0, -1.0) + 0.1 * rng.normal(size=300)
    edges = quantile_edges(x, 16)
    lam = 1e-9
    fit = run_local(HistogramGBDT(edges, trees=1, depth=1, learning_rate=1.0, l2=lam, min_leaf=1,
                                  loss="squared"), split(1, x, y)).model
    xb = bin_features(x, edges)
    best, best_gain = None, -np.inf
    g = -y  # squared loss at score 0: g = score - y, h = 1
    for f in range(4):
        for b in range(15):
            left = xb[:, f] <= b
            if left.all() or not left.any():
                continue
            gain = g[left].sum() ** 2 / left.sum() + g[~left].sum() ** 2 / (~left).sum()
            if gain > best_gain + 1e-9:
                best, best_gain = (f, b, left), gain
    f, b, left = best
    assert fit.splits() == [(0, 0, f, b)]
    np.testing.assert_allclose(fit.values[0][1:3], [y[left].mean(), y[~left].mean()], rtol=1e-6)
    np.testing.assert_allclose(fit.decision_function(x), np.where(left, y[left].mean(),
                                                                   y[~left].mean()), rtol=1e-6)


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_gbdt_splits_are_the_single_process_splits_on_any_partitioning(cancer, loss: str) -> None:
    x, y = cancer
    algorithm = HistogramGBDT(quantile_edges(x, 32), trees=8, depth=4, min_leaf=3, loss=loss)
    single = run_local(algorithm, split(1, x, y)).model
    assert len(single.splits()) > 40
    for seed, parts in ((0, 2), (1, 3), (2, 8)):
        xs, ys = _shuffled(x, y, seed)
        model = run_local(algorithm, split(parts, xs, ys)).model
        assert model.splits() == single.splits()
        for a, b in zip(model.values, single.values):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_gbdt_learns(cancer) -> None:
    x, y = cancer
    model = run_local(HistogramGBDT(quantile_edges(x, 32), trees=20, depth=3), split(1, x, y)).model
    assert (model.predict(x) == y).mean() > 0.98


@pytest.mark.parametrize("make, message", [
    (lambda: KMeans(np.zeros(3)), "init must be a"),
    (lambda: KMeans(np.zeros((2, 2)), iterations=0), "iterations must be"),
    (lambda: LogisticRegressionSGD(3, 10, batch_size=11), "exceeds"),
    (lambda: LogisticRegressionSGD(3, 100, lr=float("nan")), "lr must be"),
    (lambda: HistogramGBDT([np.array([0.0])], loss="hinge"), "loss must be one of"),
    (lambda: HistogramGBDT([np.array([0.0])], depth=13), "depth must be at most"),
    (lambda: HistogramGBDT([np.array([])]), "every feature is constant"),
    (lambda: quantile_edges(np.zeros((3, 2)), bins=300), "bins must be"),
    (lambda: split(0, np.zeros((3, 2))), "parts must be"),
    (lambda: split(4, np.zeros((3, 2))), "cannot cut 3 rows"),
    (lambda: split(2, np.zeros((3, 2)), np.zeros(2)), "x has 3 rows but y has 2"),
])
def test_bad_arguments_name_the_value(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_partitions_are_refused(cancer) -> None:
    x, y = cancer
    with pytest.raises(ValueError, match="shape"):
        KMeans(np.zeros((2, 3))).partition({"x": x})
    with pytest.raises(ValueError, match="label 0 or 1"):
        LogisticRegressionSGD(x.shape[1], len(x)).partition(split(1, x, 2 * y)[0])
    with pytest.raises(ValueError, match="NaN"):
        KMeans(np.zeros((2, 2))).partition({"x": np.array([[0.0, np.nan]])})
