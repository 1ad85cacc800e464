"""Feature transformation: statistics from the training rows only, the same numbers as
scikit-learn's imputer and scaler, and a saved form that transforms identically."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from mlsys.pipeline import FeatureSpec, FittedFeatures


def test_statistics_come_from_the_training_rows(tables, fitted) -> None:
    (train, _), (test, _) = tables
    x_train, x_test = fitted.transform(train), fitted.transform(test)
    assert x_train.dtype == np.float32 and x_train.shape == (len(train["mean radius"]), 30)
    assert np.allclose(x_train.mean(0), 0, atol=1e-5) and np.allclose(x_train.std(0), 1, atol=1e-4)
    assert not np.allclose(x_test.mean(0), 0, atol=1e-2)  # held-out rows are not re-centred
    assert fitted.mean["mean radius"] == pytest.approx(train["mean radius"].mean())
    assert fitted.mean["mean area"] == pytest.approx(np.log1p(train["mean area"]).mean())


def test_it_matches_scikit_learns_imputer_and_scaler(tables, logged) -> None:
    (train, _), (test, _) = tables
    every_7th = np.arange(len(train["mean texture"])) % 7 == 0
    holes = dict(train, **{"mean texture": np.where(every_7th, np.nan, train["mean texture"])})
    names = [n for n in train if n not in logged]
    ours = FeatureSpec(tuple(names)).fit(holes)
    matrix = lambda table: np.stack([table[n] for n in names], axis=1)
    imputer = SimpleImputer(strategy="median").fit(matrix(holes))
    scaler = StandardScaler().fit(imputer.transform(matrix(holes)))
    gappy_test = dict(test, **{"mean texture": np.where(np.arange(len(test["mean texture"])) < 3, np.nan,
                                                         test["mean texture"])})
    reference = scaler.transform(imputer.transform(matrix(gappy_test)))
    assert np.allclose(ours.transform(gappy_test), reference, atol=1e-5)


def test_the_saved_form_transforms_identically(tables, fitted, logged) -> None:
    _, (test, _) = tables
    again = FittedFeatures.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert np.array_equal(again.transform(test), fitted.transform(test))
    assert again.names == fitted.names and again.spec.log == logged


def test_constant_columns_and_bad_specs() -> None:
    flat = FeatureSpec(("c",)).fit({"c": np.full(4, 3.0)})
    assert flat.std["c"] == 1.0
    assert np.array_equal(flat.transform({"c": np.array([3.0, 4.0])}).ravel(), [0, 1])
    with pytest.raises(ValueError, match="log column 'c' has values <= -1"):
        FeatureSpec(("c",), log={"c"}).fit({"c": np.array([1.0, -2.0])})
    with pytest.raises(ValueError, match=r"log columns \['d'\] are not among the feature columns"):
        FeatureSpec(("c",), log={"d"})
    with pytest.raises(ValueError, match="columns must be non-empty and distinct"):
        FeatureSpec(("c", "c"))
    with pytest.raises(KeyError, match="no column 'c'"):
        flat.transform({"d": np.ones(2)})
