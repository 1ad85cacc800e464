"""A plain ``pytest`` from the repository root collects the suite as ``python -m pytest`` does.

Only ``python -m pytest`` puts the working directory on ``sys.path``; without ``pythonpath`` in the
pytest configuration, ``tests/simulators`` (a folder without ``__init__``) shadowed the
``simulators`` package and collection failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_plain_pytest_finds_the_packages_beside_the_tests() -> None:
    script = Path(sys.executable).with_name("pytest")
    if not script.exists():
        pytest.skip(f"no pytest script beside {sys.executable}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(script), "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/simulators/test_data.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "test_data.py::" in done.stdout
