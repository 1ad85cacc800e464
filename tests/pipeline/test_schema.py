"""Schema inference and validation: every kind of anomaly is found and named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlsys.pipeline import Feature, Schema, ValidationError


def test_training_data_conforms_to_its_inferred_schema(tables) -> None:
    (train, _), _ = tables
    schema = Schema.infer(train)
    assert schema.validate(train) == []
    assert schema.names == list(train)
    radius = schema["mean radius"]
    span = train["mean radius"].max() - train["mean radius"].min()
    assert radius.dtype == "float" and radius.min == pytest.approx(train["mean radius"].min() - 0.1 * span)
    assert Schema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema


def test_each_kind_of_anomaly_is_reported(tables) -> None:
    (train, _), (test, _) = tables
    schema = Schema.infer(train, slack=0.5)
    rows = len(test["mean texture"])
    broken = dict(test)
    broken["mean perimeter"] = test["mean perimeter"] * 10  # an upstream unit change: cm -> mm
    broken["mean texture"] = np.where(np.arange(rows) < 5, np.nan, test["mean texture"])
    del broken["worst area"]
    broken["patient id"] = np.arange(rows)
    kinds = {(a.column, a.kind) for a in schema.validate(broken)}
    assert kinds == {("mean perimeter", "out of range"), ("mean texture", "missing values"),
                     ("worst area", "missing column"), ("patient id", "unexpected column")}
    with pytest.raises(ValidationError, match="4 anomalies: .*mean perimeter: out of range") as error:
        schema.check(broken)
    assert len(error.value.anomalies) == 4


def test_types_lengths_and_allowed_missing_values() -> None:
    schema = Schema((Feature("visits", "int", 0, 100), Feature("score", "float", 0, 1, max_missing=0.5)))
    ok = {"visits": np.array([1, 2, 3]), "score": np.array([0.5, np.nan, 0.1])}
    assert schema.validate(ok) == []
    kinds = lambda table: [a.kind for a in schema.validate(table)]
    assert kinds({"visits": np.array([1.5, 2.0]), "score": np.array(["a", "b"])}) == ["wrong type"] * 2
    assert kinds({"visits": np.array([1, 2]), "score": np.array([0.1])}) == ["length"]
    assert Schema.infer({"visits": np.array([1.0, 2.0, 7.0])})["visits"].dtype == "int"


@pytest.mark.parametrize("make, message", [
    (lambda: Feature("x", "str", 0, 1), "dtype must be one of"),
    (lambda: Feature("x", "float", 2, 1), r"need finite min <= max, got \[2, 1\]"),
    (lambda: Feature("x", "float", 0, 1, max_missing=2), "max_missing must be in"),
    (lambda: Schema((Feature("x", "float", 0, 1),) * 2), r"column names repeat: \['x'\]"),
    (lambda: Schema.infer({"x": np.array(["a"])}), "column 'x' is not numeric"),
    (lambda: Schema.infer({"x": np.array([1.0])}, slack=-1), "slack must be a finite number >= 0"),
])
def test_bad_schemas_are_refused(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()
