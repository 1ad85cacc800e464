"""Feature transformation with statistics fitted on training data only, and kept for serving.

A :class:`FeatureSpec` says which raw columns become features, in which order, and how; fitting it
on the training rows (the "analyze" phase of TensorFlow Transform, ``fit`` in scikit-learn)
computes the statistics the transformation needs, and the resulting :class:`FittedFeatures`
transforms any later rows with exactly those numbers. It is saved with the model, so serving runs
this same code with the same statistics rather than a second implementation of it.

Each feature column: missing values (NaN) become the training median; ``log`` columns become
``log1p(x)`` (for skewed, non-negative measurements); then ``(x - mean) / std`` with the training
mean and (population) standard deviation. A constant training column keeps ``std = 1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .schema import Columns


@dataclass(frozen=True)
class FeatureSpec:
    """The feature columns, in order, and which of them are log-transformed."""

    columns: tuple[str, ...]
    log: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "log", frozenset(self.log))
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError(f"FeatureSpec: columns must be non-empty and distinct, got {self.columns}")
        unknown = sorted(self.log - set(self.columns))
        if unknown:
            raise ValueError(f"FeatureSpec: log columns {unknown} are not among the feature columns")

    def fit(self, columns: Columns) -> FittedFeatures:
        """Compute the medians, means and standard deviations on ``columns`` (training rows)."""
        median, mean, std = {}, {}, {}
        for name in self.columns:
            raw = _column(columns, name)
            present = raw[~np.isnan(raw)]
            if not len(present):
                raise ValueError(f"FeatureSpec.fit: column {name!r} has no values to fit on")
            median[name] = float(np.median(present))
            values = self.log_transform(name, np.where(np.isnan(raw), median[name], raw))
            mean[name] = float(values.mean())
            spread = float(values.std())
            std[name] = spread if spread > 0 else 1.0
        return FittedFeatures(self, median, mean, std)

    def log_transform(self, name: str, values: np.ndarray) -> np.ndarray:
        """``log1p(values)`` if ``name`` is a log column, else ``values``."""
        if name not in self.log:
            return values
        if np.any(values <= -1):
            raise ValueError(f"FeatureSpec: log column {name!r} has values <= -1 "
                             f"(e.g. {values[values <= -1][0]}); log1p needs values > -1")
        return np.log1p(values)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "log": sorted(self.log)}


def _column(columns: Columns, name: str) -> np.ndarray:
    if name not in columns:
        raise KeyError(f"no column {name!r} among {sorted(columns)}")
    return np.asarray(columns[name], dtype=np.float64)


@dataclass(frozen=True)
class FittedFeatures:
    """A :class:`FeatureSpec` with its training statistics: the transformation to train and serve."""

    spec: FeatureSpec
    median: Mapping[str, float]
    mean: Mapping[str, float]
    std: Mapping[str, float]

    @property
    def names(self) -> list[str]:
        """The feature matrix's columns, in order."""
        return list(self.spec.columns)

    def transform(self, columns: Columns) -> np.ndarray:
        """The float32 feature matrix, one row per input row, one column per feature."""
        out = []
        for name in self.spec.columns:
            raw = _column(columns, name)
            values = self.spec.log_transform(name, np.where(np.isnan(raw), self.median[name], raw))
            out.append((values - self.mean[name]) / self.std[name])
        return np.stack(out, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "median": dict(self.median), "mean": dict(self.mean),
                "std": dict(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedFeatures:
        spec = FeatureSpec(tuple(data["spec"]["columns"]), frozenset(data["spec"]["log"]))
        return cls(spec, dict(data["median"]), dict(data["mean"]), dict(data["std"]))
