"""Grading a folder: submissions found in nbgrader's layout, the gradebook saved after each one and
complete only at the end, ``--resume``, Ctrl-C, the worker's own memory limit, the benchmark's
folders."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_helpers import save, submission

from mlsys.grading import batch, bench, notebook, runner
from mlsys.grading.gradebook import PARTIAL, Gradebook


def test_submissions_are_found_in_flat_and_nbgrader_layouts(tmp_path: Path) -> None:
    (tmp_path / "alice.ipynb").write_text("{}")
    (tmp_path / "bob" / "autodiff").mkdir(parents=True)
    (tmp_path / "bob" / "autodiff" / "autodiff.ipynb").write_text("{}")
    (tmp_path / "carol" / ".ipynb_checkpoints").mkdir(parents=True)
    (tmp_path / "carol" / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    (tmp_path / "dave").mkdir()
    for name in ("a.ipynb", "b.ipynb"):
        (tmp_path / "dave" / name).write_text("{}")
    found = [s for s, _ in batch.find_submissions(tmp_path)]
    assert found == ["alice", "bob", "dave/a", "dave/b"]


def _report(student: str, score: float) -> runner.Report:
    return runner.Report(student, "autodiff", [runner.Outcome("t", score, 1.0, score == 1.0)],
                         digest=student)


def test_the_gradebook_is_partial_until_finished_and_resumes(tmp_path: Path) -> None:
    book = Gradebook(tmp_path)
    book.add(_report("alice", 1.0))
    assert (tmp_path / PARTIAL).is_file() and not (tmp_path / "gradebook.json").exists()
    assert json.loads((tmp_path / PARTIAL).read_text())["complete"] is False
    again = Gradebook(tmp_path)
    assert set(again.resume()) == {("alice", "autodiff")}
    again.add(_report("bob", 0.0))
    paths = again.finish([("bob", "autodiff"), ("alice", "autodiff")])
    assert not (tmp_path / PARTIAL).exists()
    assert [r["student"] for r in json.loads(paths["json"].read_text())] == ["bob", "alice"]
    assert paths["csv"].read_text().splitlines()[1:] == ["bob,autodiff,0,0,1", "alice,autodiff,1,1,1"]
    assert set(Gradebook(tmp_path).resume()) == {("alice", "autodiff"), ("bob", "autodiff")}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def _folder(autodiff, tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        save(submission(autodiff) if name.startswith("full") else autodiff.student_notebook(),
             tmp_path / "subs" / f"{name}.ipynb")
    return tmp_path / "subs"


def _grade(folder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlsys.cli", "lab", "grade", str(folder),
                           "--out", str(out), "--jobs", "1", "--no-progress", *extra],
                          capture_output=True, text=True, timeout=600)


def test_resume_grades_only_what_is_new_or_changed(autodiff, tmp_path: Path,
                                                   sandbox_kind: str) -> None:
    folder, out = _folder(autodiff, tmp_path, ["full_a", "empty_b"]), tmp_path / "book"
    assert _grade(folder, out, "--sandbox", sandbox_kind).returncode == 0
    first = {r["student"]: r for r in json.loads((out / "gradebook.json").read_text())}
    save(submission(autodiff), folder / "empty_b.ipynb")  # b finished the lab since
    save(autodiff.student_notebook(), folder / "new_c.ipynb")
    done = _grade(folder, out, "--resume", "--sandbox", sandbox_kind)
    assert done.returncode == 0 and "1 kept from the earlier run" in done.stdout
    second = {r["student"]: r for r in json.loads((out / "gradebook.json").read_text())}
    assert second["full_a"] == first["full_a"]  # not graded again
    assert second["empty_b"]["score"] == 20 and second["new_c"]["score"] == 0


def test_ctrl_c_stops_cleanly_and_the_run_can_be_resumed(autodiff, tmp_path: Path,
                                                         sandbox_kind: str) -> None:
    folder = _folder(autodiff, tmp_path, ["empty_a", "full_b", "full_c", "full_d"])
    out = tmp_path / "book"
    proc = subprocess.Popen([sys.executable, "-m", "mlsys.cli", "lab", "grade", str(folder),
                             "--out", str(out), "--jobs", "1", "--no-progress",
                             "--sandbox", sandbox_kind],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / PARTIAL).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (out / PARTIAL).exists(), "the first report should be saved before the batch ends"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "--resume" in err and not (out / "gradebook.json").exists()
    saved = json.loads((out / PARTIAL).read_text())["reports"]
    assert 1 <= len(saved) < 4
    done = _grade(folder, out, "--resume", "--sandbox", sandbox_kind)
    assert done.returncode == 0, done.stderr
    scores = {r["student"]: r["score"] for r in json.loads((out / "gradebook.json").read_text())}
    assert scores == {"empty_a": 0, "full_b": 20, "full_c": 20, "full_d": 20}


def test_a_notebook_of_an_unknown_lab_costs_only_itself(autodiff, tmp_path: Path,
                                                        sandbox_kind: str) -> None:
    folder = _folder(autodiff, tmp_path, ["full_a"])
    stray = notebook.read(folder / "full_a.ipynb")
    stray.metadata = {"mlsys": ["no", "lab", "here"]}
    notebook.write(stray, folder / "stray.ipynb")
    done = _grade(folder, tmp_path / "book", "--sandbox", sandbox_kind)
    assert done.returncode == 0, done.stderr
    reports = {r["student"]: r for r in
               json.loads((tmp_path / "book" / "gradebook.json").read_text())}
    assert reports["full_a"]["score"] == 20
    assert "cannot tell which lab" in reports["stray"]["notes"][0]


def test_the_graders_worker_has_a_memory_limit(autodiff, tmp_path: Path, monkeypatch) -> None:
    path = save(submission(autodiff), tmp_path / "a.ipynb")
    monkeypatch.setattr(batch, "WORKER_MEMORY_MB", 64)  # far too little for the grader itself
    limits = runner.Limits(cell_timeout=30, timeout=60, memory_mb=64, sandbox="none")
    report = batch.grade_one(autodiff, "a", path, limits)
    assert report.score == 0 and "grading worker failed" in report.notes[0]
    assert "64 MiB" in report.notes[0]


def test_bench_folders_mix_full_partial_and_empty_work(autodiff, tmp_path: Path) -> None:
    subs = bench.make_submissions(autodiff, 4, tmp_path)
    assert [s for s, _ in subs] == [f"student00{i}" for i in range(4)]
    stubs = [sum("raise NotImplementedError()" in c.source for c in notebook.read(p).cells
                 if c.cell_type == "code") for _, p in subs]
    assert stubs == [0, 3, 1, 2]  # 3 solution cells: reference, student version, then partial
    with pytest.raises(SystemExit) as stop:
        bench.main(["--n", "0"])
    assert stop.value.code == 2
