"""Serving a registered model: validate the request, transform it as in training, predict.

:class:`Predictor` runs the artefact's own fitted transformation, so a request is turned into
features by the same code with the same statistics as the training rows were. :func:`feature_skew`
is the test that catches the alternative, a transformation written a second time for serving
(another language, another team, another library's defaults), by running both on the same raw rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .artifacts import ModelArtifact
from .model import predict_proba
from .schema import Columns, ValidationError


def records_to_columns(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """JSON-style rows (``[{column: value}, ...]``) as columns; an absent or null value is NaN."""
    def number(record: Mapping[str, Any], name: str) -> float:
        value = record.get(name)
        return np.nan if value is None else float(value)

    return {name: np.array([number(r, name) for r in records], dtype=np.float64) for name in names}


class Predictor:
    """A model artefact ready to answer requests.

    ``on_anomaly="raise"`` refuses a batch that breaks the schema (:class:`ValidationError`, with
    every anomaly); ``"flag"`` predicts anyway and keeps the anomalies in :attr:`last_anomalies`
    for monitoring.
    """

    def __init__(self, artifact: ModelArtifact, on_anomaly: str = "raise") -> None:
        if on_anomaly not in ("raise", "flag"):
            raise ValueError(f"Predictor: on_anomaly must be 'raise' or 'flag', got {on_anomaly!r}")
        self.artifact, self.on_anomaly = artifact, on_anomaly
        self.last_anomalies: list = []

    def features(self, columns: Columns) -> np.ndarray:
        """Validate ``columns`` against the schema, then transform them as in training."""
        self.last_anomalies = self.artifact.schema.validate(columns)
        if self.last_anomalies and self.on_anomaly == "raise":
            raise ValidationError(self.last_anomalies)
        return self.artifact.features.transform(columns)

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Class probabilities for each row of ``columns``."""
        return predict_proba(self.artifact.model, self.features(columns))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Answers for JSON-style rows: the predicted class and its probability."""
        probs = self.predict_proba(records_to_columns(records, self.artifact.schema.names))
        return [{"class": int(p.argmax()), "probability": float(p.max())} for p in probs]


@dataclass(frozen=True)
class Skew:
    """A feature that two implementations compute differently on the same rows."""

    feature: str
    max_abs_diff: float
    rows_differing: int

    def __str__(self) -> str:
        return (f"{self.feature}: differs on {self.rows_differing} rows "
                f"(max |difference| {self.max_abs_diff:.3g})")


def feature_skew(reference: Callable[[Columns], np.ndarray], candidate: Callable[[Columns], np.ndarray],
                 columns: Columns, names: Sequence[str], *, rtol: float = 1e-5,
                 atol: float = 1e-5) -> list[Skew]:
    """The features on which ``candidate`` (e.g. a serving path) disagrees with ``reference`` (the
    training transformation) for the raw rows ``columns``; empty when they agree everywhere."""
    want = np.asarray(reference(columns), dtype=np.float64)
    got = np.asarray(candidate(columns), dtype=np.float64)
    if want.shape != got.shape:
        raise ValueError(f"feature_skew: the reference gives shape {want.shape}, the candidate {got.shape}")
    if want.shape[1] != len(names):
        raise ValueError(f"feature_skew: {want.shape[1]} features but {len(names)} names")
    differ = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    return [Skew(name, float(np.nanmax(np.abs(got[:, j] - want[:, j]))), int(differ[:, j].sum()))
            for j, name in enumerate(names) if differ[:, j].any()]
