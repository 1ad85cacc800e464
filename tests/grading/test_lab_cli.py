"""``mlsys lab`` for learners and instructors: list, get, check, release; the in-notebook
``check`` and its hints; options anywhere and help for all of them; light imports."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from lab_helpers import save, submission

from mlsys.cli import main
from mlsys.grading import checks, cli, interactive, labs, notebook


def test_list_names_each_lab_with_its_chapter_points_and_time(capsys) -> None:
    assert main(["lab", "list", "--json"]) == 0
    rows = {r["lab"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(labs.available())
    assert rows["autodiff"]["chapter"] == "02_autodiff"
    assert rows["autodiff"]["points"] == labs.get("autodiff").points == 20
    assert all(isinstance(r["minutes"], int) and r["minutes"] > 0 for r in rows.values())
    assert rows["step_cost"]["chapter"] == "01_ml_systems_stack"
    assert rows["scaling"]["chapter"] == "05_parallel_scaling"
    assert main(["lab", "list"]) == 0 and "minutes" in capsys.readouterr().out


def test_get_writes_the_student_version_with_links_that_still_work(tmp_path, capsys) -> None:
    assert main(["lab", "get", "autodiff", str(tmp_path)]) == 0
    written = notebook.read(tmp_path / "autodiff.ipynb")
    text = "".join(c.source for c in written.cells)
    assert "raise NotImplementedError()" in text and "BEGIN SOLUTION" not in text
    assert 'hidden_rng("autodiff/' not in text  # hidden tests and their seeds stay out
    assert written.metadata["mlsys"]["lab"] == "autodiff"
    assert f"]({labs.REPOSITORY_URL}chapters/02_autodiff.ipynb)" in text
    assert "](../" not in text
    assert main(["lab", "get", "autodiff", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["lab", "get", "nope", str(tmp_path)]) == 2
    assert "unknown lab 'nope'" in capsys.readouterr().err


def test_source_is_accepted_before_and_after_the_command(tmp_path, capsys) -> None:
    source = tmp_path / "mine"
    (source / "pipeline").mkdir(parents=True)
    (source / "pipeline" / "pipeline.ipynb").write_bytes(
        (labs.get("pipeline").folder / "pipeline.ipynb").read_bytes())
    for argv in (["lab", "--source", str(source), "list", "--json"],
                 ["lab", "list", "--json", "--source", str(source)]):
        assert main(argv) == 0
        assert [r["lab"] for r in json.loads(capsys.readouterr().out)] == ["pipeline"]
    assert main(["lab", "get", "pipeline", str(tmp_path / "out"), "--source", str(source)]) == 0
    text = (tmp_path / "out" / "pipeline.ipynb").read_text()
    assert "](file:///" in text and "](../" not in text  # private labs link to their folder


def test_release_writes_one_lab_or_all_and_stamps_the_secret(tmp_path, capsys) -> None:
    assert main(["lab", "release", "pipeline", "--out", str(tmp_path / "one"),
                 "--secret", "s3", "--no-verify"]) == 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["pipeline"]
    stamped = notebook.read(tmp_path / "one" / "pipeline" / "pipeline.ipynb")
    assert stamped.metadata["mlsys"]["secret_id"] == checks.secret_id("s3")
    assert "s3" not in (tmp_path / "one" / "pipeline" / "pipeline.ipynb").read_text()
    assert main(["lab", "release", "--out", str(tmp_path / "all")]) == 0
    assert {p.name for p in (tmp_path / "all").iterdir()} == set(labs.available())
    assert main(["lab", "release", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown lab(s) 'nope'" in capsys.readouterr().err


def test_release_verifies_the_reference_against_the_class_secret(tmp_path, capsys,
                                                                  sandbox_kind) -> None:
    assert main(["lab", "release", "pipeline", "--out", str(tmp_path), "--secret", "class-2026",
                 "--sandbox", sandbox_kind]) == 0
    assert "verified pipeline: the reference scores 10/10" in capsys.readouterr().out


def test_check_runs_the_visible_tests_and_shows_a_hint(autodiff, tmp_path, capsys) -> None:
    path = save(submission(autodiff, {"unbroadcast", "vjp_rules"}), tmp_path / "mine.ipynb")
    assert main(["lab", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ok   test_vjp_mul" in out and "FAIL test_backward" in out
    assert f"hint: {autodiff.tests[-1].hints[0]}" in out
    assert "score on visible tests: 10/20" in out


def test_check_rejects_a_notebook_that_is_not_a_lab(tmp_path, capsys) -> None:
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}))
    assert main(["lab", "check", str(path)]) == 2
    assert "does not say which lab" in capsys.readouterr().err


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        elif not isinstance(action, argparse._HelpAction):
            yield parser.prog, action


def test_every_argument_has_help() -> None:
    missing = [f"{prog} {action.dest}" for prog, action in _actions(cli._parser())
               if not action.help]
    assert missing == []


def test_list_and_help_import_nothing_heavy_from_the_grader() -> None:
    code = ("import sys\nfrom mlsys.grading import cli\ncli.main(['list'])\n"
            "heavy = [m for m in ('mlsys.grading.runner', 'mlsys.grading.session', "
            "'mlsys.grading.sandbox', 'mlsys.grading.batch', 'IPython', 'nbformat', "
            "'nbclient') if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "HEAVY []" in out


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


def test_hints_are_revealed_one_at_a_time(autodiff, monkeypatch, capsys) -> None:
    monkeypatch.setattr(interactive, "_user_namespace", lambda: _namespace(autodiff, False))
    check = interactive.checker("autodiff")
    hints = {t.grade_id: t.hints for t in autodiff.tests}["test_backward"]
    for shown in range(1, len(hints) + 2):
        check("test_backward")
        out = capsys.readouterr().out
        visible = min(shown, len(hints))
        assert out.count("     hint ") == visible
        assert hints[visible - 1] in out
        assert ("check again for the next hint" in out) == (visible < len(hints))


def test_check_is_off_inside_the_graders_kernel(monkeypatch, capsys) -> None:
    monkeypatch.setenv(interactive.GRADING_ENV, "1")
    assert interactive.checker("no-such-lab")() is False
    assert "off while the grader" in capsys.readouterr().out


BAD = [  # (command line, what the one-line error names)
    (["list", "--source", "{tmp}/missing"], "does not exist"),
    (["get", "nope", "{tmp}"], "unknown lab"),
    (["check", "{tmp}/missing.ipynb"], "not a readable notebook"),
    (["check", "{nb}", "--sandbox", "bogus"], "--sandbox"),
    (["check", "{nb}", "--cell-timeout", "0"], "--cell-timeout"),
    (["check", "{nb}", "--timeout", "nan"], "--timeout"),
    (["check", "{nb}", "--memory", "10"], "--memory"),
    (["check", "{nb}", "--lab", "nope"], "unknown lab"),
    (["release", "--out", "{file}"], "expected a folder"),
    (["grade", "{tmp}", "--out", "{file}"], "expected a folder"),
    (["release", "--secret", "", "--no-verify", "--out", "{tmp}/r"], "secret"),
    (["release", "--sandbox", "bogus"], "--sandbox"),
    (["grade", "{tmp}", "--jobs", "0"], "--jobs"),
    (["grade", "{tmp}", "--timeout", "inf"], "--timeout"),
    (["grade", "{tmp}", "--secret", ""], "secret"),
    (["grade", "{tmp}", "--lab", "nope"], "unknown lab"),
    (["grade", "{tmp}/missing"], "does not exist"),
    (["grade", "{tmp}", "--sandbox", "bogus"], "--sandbox"),
]


@pytest.mark.parametrize("argv, names", BAD)
def test_bad_input_is_one_line_and_exit_code_2(argv, names: str, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": [],
                              "metadata": {"mlsys": {"lab": "autodiff"}}}))
    args = [a.format(tmp=tmp_path, file=tmp_path / "file", nb=nb) for a in argv]
    try:
        code = main(["lab", *args])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and names in err, err
    assert "Traceback" not in err
