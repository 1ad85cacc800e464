"""The shared trace folder for the scheduling tests (they skip where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.core import find_shared_data


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    try:
        return find_shared_data(Path(__file__).parent) / "traces"
    except FileNotFoundError as error:
        pytest.skip(str(error))
