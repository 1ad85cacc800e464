"""Service-time models: how long a replica takes for one batch of ``b`` requests.

Batching pays because a batch has a fixed cost (dispatch, reading the weights, per-call overhead)
shared by its requests plus a cost per request: ``s(b) ~ fixed + per_item * b`` (the *cost
curve*). :func:`measure_engine` measures that curve on the real engine; :class:`Empirical` replays
the measured samples, so the simulator's service times have the measured spread, not only its mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np

__all__ = ["ServiceModel", "Deterministic", "Exponential", "Affine", "Empirical", "Replayed",
           "measure_engine"]


class ServiceModel:
    """Base class: :meth:`sample` draws the service time of a batch sent at ``now``,
    :meth:`mean` is its mean."""

    def sample(self, batch: int, rng: np.random.Generator, now: float = 0.0) -> float:
        raise NotImplementedError

    def mean(self, batch: int) -> float:
        raise NotImplementedError

    def second_moment(self, batch: int) -> float:
        """E[S^2] for a batch of ``batch`` (for the Pollaczek-Khinchine formula)."""
        raise NotImplementedError

    def capacity(self, batch: int, replicas: int = 1) -> float:
        """Requests per second that ``replicas`` replicas sustain with full batches of ``batch``."""
        return replicas * batch / self.mean(batch)


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class Deterministic(ServiceModel):
    """Always ``seconds(batch)`` (a number, or a function of the batch size)."""

    def __init__(self, seconds: float | Callable[[int], float]) -> None:
        if callable(seconds):
            self._fn = seconds
        else:
            value = _positive("seconds", seconds)
            self._fn = lambda batch: value

    def sample(self, batch: int, rng: np.random.Generator, now: float = 0.0) -> float:
        return self._fn(batch)

    def mean(self, batch: int) -> float:
        return self._fn(batch)

    def second_moment(self, batch: int) -> float:
        return self._fn(batch) ** 2


class Exponential(ServiceModel):
    """Exponentially distributed with mean ``mean_seconds`` (whatever the batch: M/M/c checks)."""

    def __init__(self, mean_seconds: float) -> None:
        self._mean = _positive("mean_seconds", mean_seconds)

    def sample(self, batch: int, rng: np.random.Generator, now: float = 0.0) -> float:
        return rng.exponential(self._mean)

    def mean(self, batch: int) -> float:
        return self._mean

    def second_moment(self, batch: int) -> float:
        return 2 * self._mean ** 2


class Affine(Deterministic):
    """The cost curve ``fixed + per_item * batch``, deterministic."""

    def __init__(self, fixed: float, per_item: float) -> None:
        if not (math.isfinite(fixed) and math.isfinite(per_item) and fixed >= 0 and per_item >= 0
                and fixed + per_item > 0):
            raise ValueError(f"Affine: fixed and per_item must be finite, >= 0 and not both 0, "
                             f"got {fixed!r}, {per_item!r}")
        self.fixed, self.per_item = float(fixed), float(per_item)
        super().__init__(lambda b: self.fixed + self.per_item * b)

    def __repr__(self) -> str:
        return f"Affine(fixed={self.fixed * 1e6:.0f} us, per_item={self.per_item * 1e6:.1f} us)"


class Empirical(ServiceModel):
    """Measured service times per batch size, replayed by sampling with replacement.

    A batch size that was not measured borrows the samples of the nearest measured size, scaled
    by the ratio of the fitted cost curve (:attr:`curve`) at the two sizes.
    """

    def __init__(self, samples: Mapping[int, Iterable[float]]) -> None:
        self.samples = {int(b): np.asarray(list(s), dtype=float) for b, s in samples.items()}
        bad = [b for b, s in self.samples.items() if b < 1 or not len(s) or not np.all(s > 0)]
        if not self.samples or bad:
            raise ValueError(f"Empirical: need positive samples for batch sizes >= 1; bad sizes {bad}")
        sizes = np.array(sorted(self.samples), dtype=float)
        means = np.array([np.median(self.samples[int(b)]) for b in sizes])
        if len(sizes) > 1:
            per_item, fixed = np.polyfit(sizes, means, 1)
            per_item, fixed = max(per_item, 0.0), max(fixed, 1e-9)
        else:
            per_item, fixed = 0.0, float(means[0])
        self.curve = Affine(fixed, per_item)
        self._sizes = sizes.astype(int)
        self._cache: dict[int, np.ndarray] = {}

    def _for(self, batch: int) -> np.ndarray:
        if batch not in self._cache:
            if batch in self.samples:
                self._cache[batch] = self.samples[batch]
            else:
                near = int(self._sizes[np.argmin(np.abs(self._sizes - batch))])
                self._cache[batch] = self.samples[near] * (self.curve.mean(batch) / self.curve.mean(near))
        return self._cache[batch]

    def sample(self, batch: int, rng: np.random.Generator, now: float = 0.0) -> float:
        values = self._for(batch)
        return float(values[rng.integers(len(values))])

    def mean(self, batch: int) -> float:
        return float(self._for(batch).mean())

    def second_moment(self, batch: int) -> float:
        return float((self._for(batch) ** 2).mean())


class Replayed(ServiceModel):
    """The service times of a real run, replayed in time order.

    A batch of ``b`` sent at ``now`` takes as long as the real batch sent nearest to ``now``
    did, with that batch's compute time rescaled by ``curve`` from its size to ``b`` (the rest of
    the time the replica was held — sending, waking up, replying — does not grow with the batch).
    On a machine shared with other work, slow stretches (another process holding the core) then
    land when they really did, instead of being scattered at random as sampling would.
    """

    def __init__(self, sent: np.ndarray, sizes: np.ndarray, held: np.ndarray, compute: np.ndarray,
                 curve: ServiceModel) -> None:
        order = np.argsort(sent)
        self.sent, self.sizes = np.asarray(sent, float)[order], np.asarray(sizes, int)[order]
        self.held, self.compute = np.asarray(held, float)[order], np.asarray(compute, float)[order]
        if not len(self.sent) or np.any(self.held <= 0) or np.any(self.sizes < 1):
            raise ValueError("Replayed: need at least one batch, positive times and sizes >= 1")
        self.curve = curve

    def _scaled(self, i: int | np.ndarray, batch: int) -> np.ndarray:
        sizes = np.atleast_1d(self.sizes[i])
        ratio = self.curve.mean(batch) / np.array([self.curve.mean(int(b)) for b in sizes])
        compute = np.minimum(self.compute[i], self.held[i])
        return self.held[i] - compute + compute * ratio

    def sample(self, batch: int, rng: np.random.Generator, now: float = 0.0) -> float:
        i = int(np.searchsorted(self.sent, now))
        if i == len(self.sent) or (i > 0 and now - self.sent[i - 1] <= self.sent[i] - now):
            i -= 1
        return float(self._scaled(i, batch)[0])

    def mean(self, batch: int) -> float:
        return float(self._scaled(np.arange(len(self.sent)), batch).mean())

    def second_moment(self, batch: int) -> float:
        return float((self._scaled(np.arange(len(self.sent)), batch) ** 2).mean())


def measure_engine(model: str = "digits-mlp", batch_sizes: Iterable[int] = (1, 2, 4, 8, 16, 32),
                   samples: int = 60, checkpoint: str | None = None, threads: int = 1) -> Empirical:
    """Time the real engine's forward pass for each batch size, as one replica runs it.

    Runs :func:`mlsys.serve.models.predict` in this process with ``threads`` BLAS threads (a
    replica's setting), ``samples`` times per size after a warm-up, interleaving the sizes so a
    burst of load from other processes lands on all of them.
    """
    from threadpoolctl import threadpool_limits

    from mlsys.data import load_digits
    from mlsys.serve import models

    # the weights do not change the time: an untrained model stands in when no checkpoint is given
    net = models.load(model, checkpoint) if checkpoint else models.model_spec(model).build().eval()
    sizes = sorted({int(b) for b in batch_sizes})
    pixels = load_digits("test").arrays[0]
    rows = {b: np.ascontiguousarray(pixels[np.arange(b) % len(pixels)]) for b in sizes}
    times: dict[int, list[float]] = {b: [] for b in sizes}
    with threadpool_limits(threads):
        for b in sizes:
            models.predict(net, model, rows[b])
        for _ in range(samples):
            for b in sizes:
                start = time.perf_counter()
                models.predict(net, model, rows[b])
                times[b].append(time.perf_counter() - start)
    return Empirical(times)
