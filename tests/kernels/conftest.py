"""Shared by the kernel tests: every test starts with no fallback noted yet."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture(autouse=True)
def _every_fallback_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fallback to the numpy reference is noted once per process: forget the notes of earlier
    tests (in this worker), so that a fallback in this test warns and can be asserted or refused."""
    monkeypatch.setattr(importlib.import_module("mlsys.tensor"), "_fallback_noted", set())
