"""Every shipped lab, graded in its sandbox: the reference scores full marks, the student version
runs cleanly and scores zero, and a notebook that uses the library's own implementation of a task
scores zero on that task, with the reason (the autodiff lab's cases are in the red-team batch)."""

from __future__ import annotations

import pytest
from lab_helpers import LIBRARY

from mlsys.grading import labs

NAMES = list(labs.available())


@pytest.mark.parametrize("name", NAMES)
def test_reference_scores_full_marks(lab_reports, name: str) -> None:
    report = lab_reports[(name, "reference")]
    assert report.score == report.max_score == labs.get(name).points, report
    assert report.notes == []


@pytest.mark.parametrize("name", NAMES)
def test_student_version_runs_and_scores_zero(lab_reports, name: str) -> None:
    report = lab_reports[(name, "student_version")]
    assert report.score == 0 and report.max_score == labs.get(name).points
    assert report.notes == [], "only graded cells may raise in the student version"
    assert all(t.message == "NotImplementedError" for t in report.tests), report.tests


@pytest.mark.parametrize("name", list(LIBRARY))
def test_the_librarys_implementation_is_not_an_answer(lab_reports, name: str) -> None:
    report = lab_reports[(name, "library")]
    assert report.score == LIBRARY[name][1], [(t.grade_id, t.message) for t in report.tests]
    zeroed = [t for t in report.tests if not t.passed]
    assert zeroed and all("scores 0" in t.message for t in zeroed), zeroed
