"""Fixtures shared by the grading tests: the autodiff lab, and the red-team batch graded once."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
import redteam_cases
from lab_helpers import save

from mlsys.grading import cli, labs, runner


@pytest.fixture(scope="session")
def autodiff() -> labs.Lab:
    return labs.get("autodiff")


@pytest.fixture(scope="session")
def graded(autodiff: labs.Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Every red-team submission graded in one batch through ``mlsys lab grade``.

    Under pytest-xdist the first worker to get here grades and the others wait for its
    gradebook (a lock in the run's shared temporary folder), so the batch runs once per run.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    tmp = shared / "redteam"
    with open(shared / "redteam.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cases = redteam_cases.attacks(autodiff, tmp)
        if not (tmp / "gradebook" / "gradebook.json").is_file():
            _grade(cases, tmp)
    data = json.loads((tmp / "gradebook" / "gradebook.json").read_text())
    reports = {r["student"]: runner.Report.from_json(r) for r in data}
    return reports, {n: s for n, (_, s) in cases.items()}, tmp


def _grade(cases: dict, tmp: Path) -> None:
    for name, (nb, _) in cases.items():
        path = tmp / "submissions" / f"{name}.ipynb"
        if isinstance(nb, str):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(nb)
        else:
            # mark the fake graded cell the way a forger would
            for cell in nb.cells:
                if cell.source.startswith("# a fake graded cell"):
                    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus",
                                                 "points": 100, "locked": True,
                                                 "solution": False, "schema_version": 3}
            save(nb, path)
    code = cli.main(["grade", str(tmp / "submissions"), "--lab", "autodiff", "--out",
                     str(tmp / "gradebook"), "--cell-timeout", "5", "--timeout", "60",
                     "--memory", "3072", "--jobs", "2", "--no-progress"])
    assert code == 0
