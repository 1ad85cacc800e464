"""Binary logistic regression by synchronous minibatch SGD, as BSP supersteps.

The minibatches are chosen over *global* row indices: epoch ``e`` shuffles all rows with a
generator seeded by ``(seed, e)`` and step ``t`` takes the next ``batch_size`` of them, so the
union of the partitions' rows at a step is the same minibatch however the data are split, and a
distributed fit follows the single-process one step for step. A partition's statistics are the
gradient of the log loss summed over its rows of the minibatch, the summed loss and the row count;
the coordinator takes one step of ``lr`` along the mean gradient (plus an L2 term).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .algorithm import Algorithm, Coordinator, Partition, check_features


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def with_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))])


@dataclass
class LogisticModel:
    """Weights (the last one is the bias) and the mean minibatch loss at each step."""

    weights: np.ndarray
    losses: list[float] = field(default_factory=list)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = check_features(x, len(self.weights) - 1, "LogisticModel.predict_proba")
        return sigmoid(with_bias(x) @ self.weights)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (self.predict_proba(x) >= 0.5).astype(np.int64)


class LogisticRegressionSGD(Algorithm):
    """``steps`` minibatch SGD steps on ``rows`` rows of ``features`` features, labels 0/1."""

    name = "logistic regression"

    def __init__(self, features: int, rows: int, steps: int = 100, batch_size: int = 64,
                 lr: float = 0.5, l2: float = 0.0, seed: int = 0) -> None:
        for what, value, low in (("features", features, 1), ("rows", rows, 1), ("steps", steps, 1),
                                 ("batch_size", batch_size, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"LogisticRegressionSGD: {what} must be a positive integer, "
                                 f"got {value!r}")
        if batch_size > rows:
            raise ValueError(f"LogisticRegressionSGD: batch_size {batch_size} exceeds the {rows} rows")
        for what, value in (("lr", lr), ("l2", l2)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"LogisticRegressionSGD: {what} must be a finite number >= 0, "
                                 f"got {value!r}")
        self.features, self.rows, self.batch_size = features, rows, batch_size
        self.lr, self.l2, self.seed, self._steps = float(lr), float(l2), seed, steps

    @property
    def steps(self) -> int:
        return self._steps

    def partition(self, part: dict[str, np.ndarray]) -> LogisticPartition:
        x = check_features(part["x"], self.features, "LogisticRegressionSGD partition")
        y = np.asarray(part["y"], dtype=np.float64)
        if y.shape != (len(x),) or not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("LogisticRegressionSGD partition: y must hold one label 0 or 1 per row")
        rows = np.asarray(part["rows"])
        if rows.min(initial=0) < 0 or rows.max(initial=0) >= self.rows:
            raise ValueError(f"LogisticRegressionSGD partition: row indices must lie in "
                             f"[0, {self.rows}), got {rows.min()}..{rows.max()}")
        return LogisticPartition(self, with_bias(x), y, rows, np.zeros(self.features + 1))

    def coordinator(self) -> LogisticCoordinator:
        return LogisticCoordinator(self)

    def batch_of(self, rows: np.ndarray, epoch: int) -> np.ndarray:
        """For each of ``rows`` (global indices), its minibatch within ``epoch`` (a row past the
        last full minibatch gets one past the last: it sits the epoch out)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
        position = np.empty(self.rows, dtype=np.int64)
        position[order] = np.arange(self.rows)
        return position[rows] // self.batch_size


class LogisticPartition(Partition):
    def __init__(self, spec: LogisticRegressionSGD, xb: np.ndarray, y: np.ndarray,
                 rows: np.ndarray, weights: np.ndarray, epoch: tuple = (-1, None)) -> None:
        self.spec, self.xb, self.y, self.rows, self.weights = spec, xb, y, rows, weights
        self.epoch = epoch  # (epoch, minibatch of each row), computed once per epoch

    def statistics(self, step: int) -> np.ndarray:
        epoch, index = divmod(step, self.spec.rows // self.spec.batch_size)
        if self.epoch[0] != epoch:
            self.epoch = (epoch, self.spec.batch_of(self.rows, epoch))
        mine = np.flatnonzero(self.epoch[1] == index)
        x, y = self.xb[mine], self.y[mine]
        z = x @ self.weights
        p = sigmoid(z)
        loss = (np.logaddexp(0.0, z) - y * z).sum()  # log loss, stable for large |z|
        return np.concatenate([x.T @ (p - y), [loss, len(mine)]])

    def apply(self, decision: np.ndarray, step: int) -> LogisticPartition:
        return LogisticPartition(self.spec, self.xb, self.y, self.rows, decision, self.epoch)


class LogisticCoordinator(Coordinator):
    def __init__(self, spec: LogisticRegressionSGD) -> None:
        self.spec = spec
        self.model = LogisticModel(np.zeros(spec.features + 1))

    def decide(self, total: np.ndarray, step: int) -> np.ndarray:
        gradient, loss, count = total[:-2], total[-2], total[-1]
        w = self.model.weights
        penalty = self.spec.l2 * np.append(w[:-1], 0.0)  # the bias is not penalised
        self.model.weights = w - self.spec.lr * (gradient / count + penalty)
        self.model.losses.append(float(loss / count))
        return self.model.weights

    def result(self) -> LogisticModel:
        return self.model
