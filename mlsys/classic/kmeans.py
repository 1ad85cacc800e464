"""Lloyd's k-means (Lloyd, IEEE Trans. Inf. Theory 1982) as BSP supersteps.

Each step every partition assigns its points to the nearest centroid and sums them per cluster;
the coordinator divides the summed coordinates by the summed counts. The statistics are
``k * d`` sums, ``k`` counts and the partition's inertia (sum of squared distances): their size
depends on ``k`` and ``d`` only, not on the number of points, which is why k-means distributes
well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .algorithm import Algorithm, Coordinator, Partition, check_features


def squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``(n, k)`` squared Euclidean distances, computed row by row (no matrix product), so a
    point's distances do not depend on which other points share its array."""
    return np.stack([((x - c) ** 2).sum(axis=1) for c in centroids], axis=1)


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid of every point (ties go to the lower index)."""
    return squared_distances(x, centroids).argmin(axis=1)


@dataclass
class KMeansModel:
    """Fitted centroids and the inertia (sum of squared distances) at each step."""

    centroids: np.ndarray
    inertia: list[float] = field(default_factory=list)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return assign(check_features(x, self.centroids.shape[1], "KMeansModel.predict"),
                      self.centroids)


class KMeans(Algorithm):
    """``iterations`` Lloyd steps from the given initial centroids (shape ``(k, d)``)."""

    name = "k-means"

    def __init__(self, init: np.ndarray, iterations: int = 10) -> None:
        init = np.array(init, dtype=np.float64)
        if init.ndim != 2 or len(init) < 1:
            raise ValueError(f"KMeans: init must be a (k, d) array of centroids, got shape {init.shape}")
        if not np.isfinite(init).all():
            raise ValueError("KMeans: the initial centroids contain NaN or infinite values")
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise ValueError(f"KMeans: iterations must be a positive integer, got {iterations!r}")
        self.init, self.iterations = init, iterations

    @property
    def steps(self) -> int:
        return self.iterations

    def partition(self, part: dict[str, np.ndarray]) -> KMeansPartition:
        x = check_features(part["x"], self.init.shape[1], "KMeans partition")
        return KMeansPartition(x, self.init)

    def coordinator(self) -> KMeansCoordinator:
        return KMeansCoordinator(self.init.copy())


class KMeansPartition(Partition):
    def __init__(self, x: np.ndarray, centroids: np.ndarray) -> None:
        self.x, self.centroids = x, centroids

    def statistics(self, step: int) -> np.ndarray:
        k, d = self.centroids.shape
        distances = squared_distances(self.x, self.centroids)
        nearest = distances.argmin(axis=1)
        sums = np.stack([np.bincount(nearest, weights=self.x[:, j], minlength=k)
                         for j in range(d)], axis=1)
        counts = np.bincount(nearest, minlength=k).astype(np.float64)
        inertia = distances[np.arange(len(self.x)), nearest].sum()
        return np.concatenate([sums.ravel(), counts, [inertia]])

    def apply(self, decision: np.ndarray, step: int) -> KMeansPartition:
        return KMeansPartition(self.x, decision.reshape(self.centroids.shape))


class KMeansCoordinator(Coordinator):
    def __init__(self, centroids: np.ndarray) -> None:
        self.model = KMeansModel(centroids)

    def decide(self, total: np.ndarray, step: int) -> np.ndarray:
        k, d = self.model.centroids.shape
        sums, counts = total[:k * d].reshape(k, d), total[k * d:k * d + k]
        # an empty cluster keeps its centroid (Lloyd's rule leaves it undefined)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None],
                       self.model.centroids)
        self.model.centroids = new
        self.model.inertia.append(float(total[-1]))
        return new.ravel()

    def result(self) -> KMeansModel:
        return self.model
