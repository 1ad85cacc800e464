"""Serving runs the artefact's own transformation; the skew test catches a re-implementation."""

from __future__ import annotations

import numpy as np
import pytest

from mlsys.pipeline import (
    ModelRegistry,
    Predictor,
    Schema,
    ValidationError,
    data_hash,
    feature_skew,
    predict_proba,
    train_classifier,
)


@pytest.fixture(scope="module")
def predictor(tables, fitted, tmp_path_factory):
    (train, labels), _ = tables
    model, architecture = train_classifier(fitted.transform(train), labels, epochs=3)
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    schema = Schema.infer(train, slack=0.5, max_missing=0.5)
    registry.register("cancer", model, architecture, fitted, schema, {}, data_hash(train, labels))
    return Predictor(registry.load("cancer"))


def test_served_predictions_equal_the_training_paths(tables, fitted, predictor) -> None:
    _, (test, _) = tables
    expected = predict_proba(predictor.artifact.model, fitted.transform(test))
    assert np.array_equal(predictor.predict_proba(test), expected)
    records = [{name: float(values[i]) for name, values in test.items()} for i in range(3)]
    records[0]["mean texture"] = None  # a null field: filled with the training median
    answers = predictor.predict_records(records)
    gap = dict(test, **{"mean texture": np.where(np.arange(len(test["mean texture"])) == 0, np.nan,
                                                  test["mean texture"])})
    want = predict_proba(predictor.artifact.model, fitted.transform(gap))[:3]
    assert [a["class"] for a in answers] == want.argmax(1).tolist()
    assert [a["probability"] for a in answers] == pytest.approx(want.max(1).tolist())


def test_a_request_that_breaks_the_schema_is_refused_or_flagged(tables, predictor) -> None:
    _, (test, _) = tables
    bad = dict(test, **{"mean perimeter": test["mean perimeter"] * 10})
    with pytest.raises(ValidationError, match="mean perimeter: out of range"):
        predictor.predict_proba(bad)
    flagging = Predictor(predictor.artifact, on_anomaly="flag")
    assert flagging.predict_proba(bad).shape == (len(test["mean perimeter"]), 2)
    assert [a.column for a in flagging.last_anomalies] == ["mean perimeter"]


def test_the_skew_test_catches_reimplemented_transformations(tables, fitted) -> None:
    _, (test, _) = tables
    names = fitted.names

    def rewritten(columns, ddof=0, skip_log=False, fill=None):
        out = []
        for name in names:
            raw = np.asarray(columns[name], dtype=np.float64)
            raw = np.where(np.isnan(raw), fitted.median[name] if fill is None else fill, raw)
            logged = name in fitted.spec.log and not skip_log
            values = np.log1p(raw) if logged else raw
            n = 427  # training rows: pandas' Series.std() divides by n - 1
            std = fitted.std[name] * (np.sqrt(n / (n - 1)) if ddof else 1.0)
            out.append((values - fitted.mean[name]) / std)
        return np.stack(out, axis=1)

    assert feature_skew(fitted.transform, rewritten, test, names) == []
    assert {s.feature for s in feature_skew(fitted.transform, lambda c: rewritten(c, ddof=1), test, names)} \
        == set(names)
    assert {s.feature for s in feature_skew(fitted.transform, lambda c: rewritten(c, skip_log=True), test,
                                            names)} == set(fitted.spec.log)
    holes = dict(test, **{"worst radius": np.where(np.arange(len(test["worst radius"])) < 4, np.nan,
                                                    test["worst radius"])})
    (found,) = feature_skew(fitted.transform, lambda c: rewritten(c, fill=0.0), holes, names)
    assert found.feature == "worst radius" and found.rows_differing == 4
