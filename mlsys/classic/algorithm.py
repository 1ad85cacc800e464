"""The small interface every classic algorithm is written against: one BSP superstep at a time.

An iterative algorithm in *statistical-query form* (Chu et al., NIPS 2006) needs, at every step,
only a **sum over the data** of per-row statistics: k-means the per-cluster sums and counts,
gradient descent the gradient, a histogram tree the per-bin gradient sums. So each step is one
bulk-synchronous superstep (Valiant, CACM 1990) with three roles:

* every :class:`Partition` (the worker holding one part of the data) computes its
  ``statistics(step)``, a flat float64 array of the same length on every partition;
* the arrays are **summed** (by an all-reduce, at a parameter server, or by a dataflow engine's
  aggregation);
* one :class:`Coordinator` turns the sum into a ``decision`` (new centroids, new weights, the
  splits of one tree level), and every partition ``apply``-s it before the next step.

The executors in :mod:`mlsys.classic.run` decide *where* the coordinator runs (replicated on every
rank, on the server, on the driver) and how the statistics and decisions travel; the algorithms do
not know. Every executor sums the partitions' statistics in partition order, so the same
partitions give bitwise the same model on every executor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Partition(ABC):
    """One worker's part of the data and what it caches about the model (e.g. the centroids)."""

    @abstractmethod
    def statistics(self, step: int) -> np.ndarray:
        """This partition's contribution to the step's sum: a flat float64 array."""

    @abstractmethod
    def apply(self, decision: np.ndarray, step: int) -> Partition:
        """The partition after the coordinator's ``decision`` for ``step`` (a new object or self)."""


class Coordinator(ABC):
    """Turns each step's summed statistics into a decision; holds the model being fitted."""

    @abstractmethod
    def decide(self, total: np.ndarray, step: int) -> np.ndarray:
        """The decision (a flat float64 array every partition applies) from the summed statistics."""

    @abstractmethod
    def result(self) -> Any:
        """The fitted model."""


class Algorithm(ABC):
    """An algorithm's hyperparameters and starting point: builds partitions and a coordinator."""

    name: str = "algorithm"

    @property
    @abstractmethod
    def steps(self) -> int:
        """How many supersteps one fit takes."""

    @abstractmethod
    def partition(self, part: dict[str, np.ndarray]) -> Partition:
        """The worker-side state for one part of the data (see :func:`split`)."""

    @abstractmethod
    def coordinator(self) -> Coordinator:
        """A fresh coordinator (each fit starts from the same initial model)."""


def split(parts: int, x: np.ndarray, y: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """``x`` (and ``y``) cut into ``parts`` contiguous near-equal partitions.

    Each partition is a dict with ``x``, ``y`` (if given) and ``rows``, the global indices of its
    rows, so an algorithm can make choices (such as minibatches) that do not depend on the split.
    """
    if not isinstance(parts, int) or isinstance(parts, bool) or parts < 1:
        raise ValueError(f"split: parts must be a positive integer, got {parts!r}")
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"split: x must be a 2-D array (rows, features), got shape {x.shape}")
    if parts > len(x):
        raise ValueError(f"split: cannot cut {len(x)} rows into {parts} non-empty partitions")
    if y is not None and len(y) != len(x):
        raise ValueError(f"split: x has {len(x)} rows but y has {len(y)}")
    bounds = np.linspace(0, len(x), parts + 1).round().astype(int)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = {"x": x[lo:hi], "rows": np.arange(lo, hi)}
        if y is not None:
            part["y"] = np.asarray(y)[lo:hi]
        out.append(part)
    return out


def check_features(x: np.ndarray, features: int, what: str) -> np.ndarray:
    """``x`` as a float64 matrix with ``features`` columns and finite values, or a clear error."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != features:
        raise ValueError(f"{what}: expected an array of shape (rows, {features}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: the data contain NaN or infinite values")
    return x
