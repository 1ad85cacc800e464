"""What raw data must look like: a schema inferred from training data, and the anomalies of a batch.

The shape of TensorFlow Data Validation: infer a schema once from data you trust, review it, keep
it with the model, and validate every later batch (the next training set, a day of serving
requests) against it. A table is ``{column name: 1-D numpy array}``; a missing value is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Columns = Mapping[str, np.ndarray]
DTYPES = ("float", "int")


@dataclass(frozen=True)
class Feature:
    """One column: its type, the range of values it may take, and how many may be missing."""

    name: str
    dtype: str  # "float" or "int" (whole numbers)
    min: float
    max: float
    max_missing: float = 0.0  # the fraction of rows that may be NaN

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"Feature {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min <= self.max):
            raise ValueError(f"Feature {self.name!r}: need finite min <= max, got [{self.min}, {self.max}]")
        if not 0.0 <= self.max_missing <= 1.0:
            raise ValueError(f"Feature {self.name!r}: max_missing must be in [0, 1], got {self.max_missing}")


@dataclass(frozen=True)
class Anomaly:
    """One way a batch breaks the schema."""

    column: str
    kind: str  # missing column, unexpected column, wrong type, missing values, out of range, length
    detail: str

    def __str__(self) -> str:
        return f"{self.column}: {self.kind}: {self.detail}"


class ValidationError(ValueError):
    """A batch that breaks its schema; ``anomalies`` lists every problem found."""

    def __init__(self, anomalies: list[Anomaly]) -> None:
        self.anomalies = anomalies
        super().__init__(f"{len(anomalies)} anomalies: " + "; ".join(map(str, anomalies)))


def _as_array(columns: Columns, name: str) -> np.ndarray:
    return np.asarray(columns[name])


@dataclass(frozen=True)
class Schema:
    """The expected columns, in order, each a :class:`Feature`."""

    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"Schema: column names repeat: {repeated}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"Schema has no column {name!r}; it has {self.names}")

    @classmethod
    def infer(cls, columns: Columns, *, slack: float = 0.1, max_missing: float = 0.0) -> Schema:
        """A schema that ``columns`` satisfies: each range widened by ``slack`` of its span on
        both sides, ``int`` where every value is whole. Review it before trusting it."""
        if not columns:
            raise ValueError("Schema.infer: no columns")
        if not (math.isfinite(slack) and slack >= 0):
            raise ValueError(f"Schema.infer: slack must be a finite number >= 0, got {slack!r}")
        features = []
        for name in columns:
            values = _as_array(columns, name)
            if values.dtype.kind not in "fiub":
                raise ValueError(f"Schema.infer: column {name!r} is not numeric (dtype {values.dtype})")
            present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
            if not len(present):
                raise ValueError(f"Schema.infer: column {name!r} has no values")
            low, high = float(present.min()), float(present.max())
            whole = bool(np.all(np.mod(present, 1) == 0))
            margin = slack * (high - low)
            features.append(Feature(name, "int" if whole else "float", low - margin, high + margin,
                                    max_missing))
        return cls(tuple(features))

    def validate(self, columns: Columns) -> list[Anomaly]:
        """Every anomaly of ``columns`` against this schema (an empty list: the batch conforms)."""
        found: list[Anomaly] = []
        lengths = {name: len(_as_array(columns, name)) for name in columns}
        if len(set(lengths.values())) > 1:
            found.append(Anomaly("*", "length", f"columns have different lengths {lengths}"))
        for name in columns:
            if name not in self.names:
                found.append(Anomaly(name, "unexpected column", "not in the schema"))
        for feature in self.features:
            if feature.name not in columns:
                found.append(Anomaly(feature.name, "missing column", "the schema requires it"))
                continue
            values = _as_array(columns, feature.name)
            if values.ndim != 1 or values.dtype.kind not in "fiub":
                found.append(Anomaly(feature.name, "wrong type",
                                     f"expected a 1-D numeric column, got dtype {values.dtype}, "
                                     f"shape {values.shape}"))
                continue
            values = values.astype(np.float64)
            missing = np.isnan(values)
            if missing.mean() > feature.max_missing:
                found.append(Anomaly(feature.name, "missing values",
                                     f"{int(missing.sum())} of {len(values)} rows are missing "
                                     f"(at most {feature.max_missing:.0%} allowed)"))
            present = values[~missing]
            if feature.dtype == "int" and np.any(np.mod(present, 1) != 0):
                found.append(Anomaly(feature.name, "wrong type", "expected whole numbers"))
            outside = (present < feature.min) | (present > feature.max)
            if outside.any():
                found.append(Anomaly(feature.name, "out of range",
                                     f"{int(outside.sum())} values outside [{feature.min:.4g}, "
                                     f"{feature.max:.4g}], e.g. {present[outside][0]:.4g}"))
        return found

    def check(self, columns: Columns) -> None:
        """Raise :class:`ValidationError` listing every anomaly, if there is any."""
        anomalies = self.validate(columns)
        if anomalies:
            raise ValidationError(anomalies)

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        return cls(tuple(Feature(**f) for f in data["features"]))
