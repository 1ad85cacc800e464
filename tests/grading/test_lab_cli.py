"""``mlsys lab`` for learners: list, get, check (one kernel run), the in-notebook ``check``."""

from __future__ import annotations

import json

import pytest
from lab_helpers import save, submission

from mlsys.cli import main
from mlsys.grading import interactive, labs, notebook


def test_list_names_each_lab_with_its_chapter_and_points(capsys) -> None:
    assert main(["lab", "list", "--json"]) == 0
    rows = {r["lab"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["autodiff"]["chapter"] == "02_autodiff"
    assert rows["autodiff"]["points"] == labs.get("autodiff").points == 20
    assert set(rows) == set(labs.available())


def test_get_writes_the_student_version_and_keeps_existing_work(tmp_path, capsys) -> None:
    assert main(["lab", "get", "autodiff", str(tmp_path)]) == 0
    written = notebook.read(tmp_path / "autodiff.ipynb")
    text = "".join(c.source for c in written.cells)
    assert "raise NotImplementedError()" in text and "BEGIN SOLUTION" not in text
    assert "default_rng(11)" not in text  # a hidden test line
    assert written.metadata["mlsys"]["lab"] == "autodiff"
    assert main(["lab", "get", "autodiff", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["lab", "get", "nope", str(tmp_path)]) == 2
    assert "unknown lab 'nope'" in capsys.readouterr().err


def test_release_writes_every_lab(tmp_path) -> None:
    assert main(["lab", "release", "--out", str(tmp_path)]) == 0
    for name in labs.available():
        assert (tmp_path / name / f"{name}.ipynb").is_file()


def test_check_runs_the_visible_tests_of_a_notebook(autodiff, tmp_path, capsys) -> None:
    path = save(submission(autodiff), tmp_path / "mine.ipynb")
    assert main(["lab", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "score on visible tests: 20/20" in out and "ok   test_backward" in out


def test_check_rejects_a_notebook_that_is_not_a_lab(tmp_path, capsys) -> None:
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}))
    assert main(["lab", "check", str(path)]) == 2
    assert "does not say which lab" in capsys.readouterr().err


def _namespace(lab: labs.Lab, solved: bool) -> dict:
    """The reference (or student) code cells of ``lab`` executed into a fresh namespace."""
    nb = lab.source if solved else lab.student_notebook()
    ns: dict = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and not notebook.is_test(cell):
            exec(compile(cell.source, "<cell>", "exec"), ns)
    return ns


@pytest.mark.parametrize("solved", [True, False])
def test_in_notebook_check_reports_visible_tests(autodiff, monkeypatch, capsys,
                                                 solved: bool) -> None:
    monkeypatch.setattr(interactive, "_user_namespace", lambda: _namespace(autodiff, solved))
    check = interactive.checker("autodiff")
    assert check("test_vjp_mul", "test_backward") is solved
    out = capsys.readouterr().out
    assert ("ok   test_vjp_mul (2/2)" if solved else "FAIL test_vjp_mul (0/2)") in out
    assert f"visible tests: {8 if solved else 0}/8 points" in out
    with pytest.raises(KeyError, match="unknown test id"):
        check("nope")


def test_check_is_off_inside_the_graders_kernel(monkeypatch, capsys) -> None:
    monkeypatch.setenv(interactive.GRADING_ENV, "1")
    assert interactive.checker("no-such-lab")() is False
    assert "off while the grader" in capsys.readouterr().out
