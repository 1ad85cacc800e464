"""Every shipped lab: the reference scores full marks, the student version runs cleanly and
scores zero (each graded with hidden tests, in its own kernel). The autodiff lab's pair is graded
with the red-team batch."""

from __future__ import annotations

import pytest
from lab_helpers import save, submission

from mlsys.grading import batch, labs, runner

OTHERS = [name for name in labs.available() if name != "autodiff"]


@pytest.fixture(scope="module")
def reports(graded, tmp_path_factory) -> dict[tuple[str, str], runner.Report]:
    out = {("autodiff", k): graded[0][k] for k in ("reference", "student_version")}
    tmp = tmp_path_factory.mktemp("labs")
    for name in OTHERS:
        lab = labs.get(name)
        subs = [(kind, save(nb, tmp / name / f"{kind}.ipynb"))
                for kind, nb in (("reference", submission(lab)),
                                 ("student_version", lab.student_notebook()))]
        limits = runner.Limits(cell_timeout=20, timeout=60, memory_mb=3072)
        for report in batch.grade_all(lab, subs, limits, jobs=2, progress=False):
            out[(name, report.student)] = report
    return out


@pytest.mark.parametrize("name", list(labs.available()))
def test_reference_scores_full_marks(reports, name: str) -> None:
    report = reports[(name, "reference")]
    assert report.score == report.max_score == labs.get(name).points, report
    assert report.notes == []


@pytest.mark.parametrize("name", list(labs.available()))
def test_student_version_runs_and_scores_zero(reports, name: str) -> None:
    report = reports[(name, "student_version")]
    assert report.score == 0 and report.max_score == labs.get(name).points
    assert report.notes == [], "only graded cells may raise in the student version"
    assert all(t.message == "NotImplementedError" for t in report.tests), report.tests
