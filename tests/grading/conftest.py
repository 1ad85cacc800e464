"""Fixtures shared by the grading tests: the autodiff lab, and the red-team batch graded once."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redteam_cases
from lab_helpers import LIBRARY, partial, save, submission

from mlsys.grading import batch, cli, labs, runner, sandbox

SECRET = "red-team class secret"


@pytest.fixture(scope="session")
def autodiff() -> labs.Lab:
    return labs.get("autodiff")


@pytest.fixture(scope="session")
def sandbox_kind() -> str:
    """The sandbox the batch tests grade in (they need one: they attack it)."""
    try:
        return sandbox.choose("auto")
    except sandbox.SandboxUnavailable as error:
        pytest.skip(f"no sandbox on this machine: {error}")


@dataclass
class Batch:
    """The red-team batch after grading: reports, expected scores and what the attacks left."""

    reports: dict[str, runner.Report]
    expected: dict[str, int]
    tmp: Path
    marker: str
    connections: list[bytes] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def graded(autodiff: labs.Lab, sandbox_kind: str,
           tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """Every red-team submission graded in one batch through ``mlsys lab grade``, from a copy of
    the lab sources (the attacks try to overwrite it).

    Under pytest-xdist the first worker to get here grades and the others wait for its
    gradebook (a lock in the run's shared temporary folder), so the batch runs once per run.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    tmp = shared / "redteam"
    marker = f"mlsys-redteam-detached-{os.getpid()}"
    with open(shared / "redteam.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = tmp / "batch.json"
        if not done.is_file():
            _grade(autodiff, tmp, marker, sandbox_kind)
        state = json.loads(done.read_text())
    data = json.loads((tmp / "gradebook" / "gradebook.json").read_text())
    reports = {r["student"]: runner.Report.from_json(r) for r in data}
    return Batch(reports, state["expected"], tmp, state["marker"],
                 [c.encode() for c in state["connections"]], state["digests"])


def _grade(lab: labs.Lab, tmp: Path, marker: str, kind: str) -> None:
    shutil.copytree(lab.folder.parent, tmp / "labs", symlinks=False)
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[bytes] = []

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn.recv(100))
            conn.close()

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    cases = redteam_cases.attacks(lab, tmp, SECRET, listener.getsockname()[1], marker)
    for name, (nb, _) in cases.items():
        path = tmp / "submissions" / f"{name}.ipynb"
        if isinstance(nb, str):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(nb)
        else:
            for cell in nb.cells:  # mark the fake graded cell the way a forger would
                if cell.source.startswith("# a fake graded cell"):
                    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus",
                                                 "points": 100, "locked": True,
                                                 "solution": False, "schema_version": 3}
            save(nb, path)
    targets = [tmp / "submissions" / "zz_reference.ipynb", tmp / "labs" / "autodiff" /
               "autodiff.ipynb"]
    digests = {str(p): p.read_text() for p in targets}
    try:
        code = cli.main(["grade", str(tmp / "submissions"), "--source", str(tmp / "labs"),
                         "--lab", "autodiff", "--out", str(tmp / "gradebook"),
                         "--cell-timeout", "5", "--timeout", "90", "--memory", "3072",
                         "--jobs", "2", "--no-progress", "--secret", SECRET,
                         "--sandbox", kind])
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert code == 0
    unchanged = {path: (Path(path).read_text() == text) for path, text in digests.items()}
    (tmp / "batch.json").write_text(json.dumps({
        "expected": {n: s for n, (_, s) in cases.items()}, "marker": marker,
        "connections": [c.decode(errors="replace") for c in connections],
        "digests": {p: "unchanged" if same else "changed" for p, same in unchanged.items()}}))


@pytest.fixture(scope="session")
def lab_reports(graded: Batch, sandbox_kind: str,
                tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], runner.Report]:
    """Every shipped lab graded once per run: its reference, its student version, a partly
    solved notebook, and one that uses the library's own implementation (the autodiff lab's
    first two are in the red-team batch, and its library cases too)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    tmp = shared / "labs"
    with open(shared / "labs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tmp / "reports.json").is_file():
            reports = []
            for name, lab in labs.available().items():
                subs = {"partial": partial(lab)}
                if name != "autodiff":
                    subs |= {"reference": submission(lab),
                             "student_version": lab.student_notebook()}
                if name in LIBRARY:
                    subs["library"] = submission(lab, replace=LIBRARY[name][0])
                paths = [(kind, save(nb, tmp / name / f"{kind}.ipynb")) for kind, nb in subs.items()]
                limits = runner.Limits(cell_timeout=60, timeout=300, memory_mb=3072,
                                       sandbox=sandbox_kind)
                reports += batch.grade_all(lab, paths, limits, jobs=2, progress=False)
            (tmp / "reports.json").write_text(json.dumps([r.to_json() for r in reports]))
        data = json.loads((tmp / "reports.json").read_text())
    out = {(r["lab"], r["student"]): runner.Report.from_json(r) for r in data}
    for kind in ("reference", "student_version"):
        out[("autodiff", kind)] = graded.reports[kind]
    return out
