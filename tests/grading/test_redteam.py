"""Red team: submissions that try to raise their own score (see ``redteam_cases``). Each must
score what its honest work earns; they are graded together, two at a time, each in its own
kernel, through ``mlsys lab grade`` by the session fixture ``graded``.
"""

from __future__ import annotations

import csv

import pytest

ATTACKS = ["reference", "student_version", "part1_only", "patch_helpers", "swallow_errors",
           "fake_output", "peek_expected", "edit_tests", "patch_engine", "exit", "read_tests",
           "endless_loop", "huge_allocation", "broken_file"]


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_scores_only_its_honest_work(graded, name: str) -> None:
    reports, expected, _ = graded
    report = reports[name]
    assert report.score == expected[name], [(t.grade_id, t.passed, t.message)
                                            for t in report.tests] + report.notes
    assert report.max_score == 20 and len(report.tests) == 7


def test_failures_say_why(graded) -> None:
    reports, _, _ = graded
    by_test = lambda name: {t.grade_id: t.message for t in reports[name].tests}  # noqa: E731
    assert "values differ" in by_test("patch_engine")["test_backward"]  # the real backward ran
    assert by_test("exit")["test_vjp_mul"] == ""  # SystemExit in a cell does not stop grading
    assert "kernel died" in by_test("exit")["test_topological_order"]
    assert "kernel died" in by_test("exit")["test_backward"]
    assert "longer than" in by_test("endless_loop")["test_backward"]
    assert any("MemoryError" in n for n in reports["huge_allocation"].notes)
    assert "not a readable notebook" in by_test("broken_file")["test_unbroadcast"]


def test_introspection_is_flagged_for_review(graded) -> None:
    reports, _, _ = graded
    flagged = lambda name: [n for n in reports[name].notes if n.startswith("review:")]  # noqa: E731
    assert "_getframe" in " ".join(flagged("peek_expected"))
    assert "get_objects" in " ".join(flagged("read_tests"))
    assert flagged("reference") == flagged("part1_only") == flagged("patch_engine") == []


def test_hidden_tests_are_nowhere_the_submission_can_read(graded) -> None:
    _, _, tmp = graded
    assert (tmp / "found.txt").read_text() == ""


def test_the_gradebook_holds_the_graders_scores_only(graded) -> None:
    _, expected, tmp = graded
    with open(tmp / "gradebook" / "gradebook.csv") as f:
        rows = {r["student"]: float(r["score"]) for r in csv.DictReader(f)}
    assert rows == {name: float(score) for name, score in expected.items()}
    assert "bonus" not in (tmp / "gradebook" / "gradebook.csv").read_text()
    feedback = (tmp / "gradebook" / "feedback" / "part1_only.md").read_text()
    assert "**Score: 10 / 20**" in feedback and "| test_backward | 0 / 6 | failed" in feedback
