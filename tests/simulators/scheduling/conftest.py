"""The shipped trace folder for the scheduling tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from simulators.data import data_path


@pytest.fixture(scope="session")
def trace_file() -> Callable[[str], Path]:
    """``trace_file("tiresias/60_job.csv")``: the shipped file (plain or gzip) of that trace."""
    return lambda name: data_path(f"traces/{name}")
