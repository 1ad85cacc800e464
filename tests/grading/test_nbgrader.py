"""nbgrader agrees: ``generate_assignment`` and ``autograde`` on the autodiff lab give the same
per-test scores as ``mlsys lab grade`` on the same submissions (run when nbgrader is installed)."""

from __future__ import annotations

import shutil

import pytest
from lab_helpers import save
from redteam_cases import attacks

pytest.importorskip("nbgrader")

import nbgrader.api  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from nbgrader.apps import NbGraderAPI  # noqa: E402
from nbgrader.dbutil import ALEMBIC_DIR  # noqa: E402
from traitlets.config import Config  # noqa: E402

# Honest work that passes some tests and fails others: nbgrader has no guard against tricks.
STUDENTS = ["part1_only"]


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # inside nbgrader's gradebook
def test_nbgrader_scores_equal_the_graders(autodiff, graded, tmp_path, monkeypatch) -> None:
    # nbgrader asks a fresh `alembic` process for the schema version; ask alembic in-process
    head = ScriptDirectory(ALEMBIC_DIR).get_current_head()
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", lambda: head)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    root = tmp_path / "course"
    (root / "source" / "autodiff").mkdir(parents=True)
    shutil.copy(autodiff.folder / "autodiff.ipynb", root / "source" / "autodiff")
    cases = attacks(autodiff, tmp_path)
    for student in STUDENTS:
        save(cases[student][0], root / "submitted" / student / "autodiff" / "autodiff.ipynb")
    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    api = NbGraderAPI(config=config)
    result = api.generate_assignment("autodiff")
    assert result["success"], result.get("log")
    for student in STUDENTS:
        result = api.autograde("autodiff", student)
        assert result["success"], result.get("log")
    reports = graded[0]
    with nbgrader.api.Gradebook(config.CourseDirectory.db_url) as gradebook:
        for student in STUDENTS:
            nb = gradebook.find_submission_notebook("autodiff", "autodiff", student)
            theirs = {g.name: g.score for g in nb.grades}
            ours = {t.grade_id: t.points for t in reports[student].tests}
            assert theirs == ours, student
            assert nb.score == reports[student].score == cases[student][1]
