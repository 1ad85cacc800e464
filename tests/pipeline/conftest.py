"""The breast-cancer table, split, and a transformation fitted on its training rows."""

from __future__ import annotations

import pytest

from mlsys.data import load_breast_cancer
from mlsys.pipeline import FeatureSpec

LOGGED = frozenset({"mean area", "worst area", "area error"})


@pytest.fixture(scope="session")
def tables():
    return load_breast_cancer("train"), load_breast_cancer("test")


@pytest.fixture(scope="session")
def logged() -> frozenset[str]:
    """The skewed area measurements, log-transformed."""
    return LOGGED


@pytest.fixture(scope="session")
def fitted(tables):
    (train, _), _ = tables
    return FeatureSpec(tuple(train), log=LOGGED).fit(train)
