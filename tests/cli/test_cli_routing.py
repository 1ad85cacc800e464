"""The ``mlsys`` command routes to the commands packages register as entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlsys import cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_commands_are_the_ones_in_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    installed = {" ".join(words): ep.value for words, ep in cli.commands().items()}
    assert installed == declared[cli.GROUP], (
        "the installed metadata is stale: run 'make setup' (pip install -e .) after editing "
        "the mlsys.commands entry points in pyproject.toml")


def test_every_command_has_a_main_and_a_summary() -> None:
    for words, ep in cli.commands().items():
        assert callable(ep.load()), words
        assert cli.summary(ep), f"mlsys {' '.join(words)}: its module has no docstring"


def test_help_lists_every_command_without_importing_them() -> None:
    probe = ("import sys; from mlsys import cli; cli.main(['--help']); "
             "print(sorted(m for m in sys.modules if m.startswith(('simulators', 'mlsys.comm', "
             "'mlsys.grading', 'mlsys.kernels.bench', 'mlsys.graph.bench'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    *help_lines, imported = result.stdout.strip().splitlines()
    assert imported == "[]", f"mlsys --help imported command modules: {imported}"
    listed = {line.strip().split("  ")[0] for line in help_lines if line.startswith("  ")}
    assert listed == {" ".join(w) for w in cli.commands()}
