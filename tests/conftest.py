"""Shared fixtures: seeded engine and float64 tensor factories."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import mlsys  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    mlsys.manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
