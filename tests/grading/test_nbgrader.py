"""nbgrader agrees: ``generate_assignment`` and ``autograde`` give the same per-test scores as
``mlsys lab grade`` on the same partly solved notebook, for every lab (run when nbgrader is
installed). nbgrader runs the tests inside the learner's kernel; ``mlsys lab grade`` runs them in
the grader: on honest work both must agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from lab_helpers import partial, save

from mlsys.grading import labs

pytest.importorskip("nbgrader")

import nbgrader.api  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from nbgrader.apps import NbGraderAPI  # noqa: E402
from nbgrader.dbutil import ALEMBIC_DIR  # noqa: E402
from traitlets.config import Config  # noqa: E402


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # inside nbgrader's gradebook
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", list(labs.available()))
def test_nbgrader_scores_equal_the_graders(lab_reports, name: str, tmp_path, monkeypatch) -> None:
    # nbgrader asks a fresh `alembic` process for the schema version; ask alembic in-process
    head = ScriptDirectory(ALEMBIC_DIR).get_current_head()
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", lambda: head)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    lab = labs.get(name)
    root = tmp_path / "course"
    shutil.copytree(lab.folder, root / "source" / name)
    save(partial(lab), root / "submitted" / "student" / name / f"{name}.ipynb")
    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.ExecutePreprocessor.timeout = 300
    api = NbGraderAPI(config=config)
    result = api.generate_assignment(name)
    assert result["success"], result.get("log")
    result = api.autograde(name, "student")
    assert result["success"], result.get("log")
    ours = lab_reports[(name, "partial")]
    with nbgrader.api.Gradebook(config.CourseDirectory.db_url) as gradebook:
        nb = gradebook.find_submission_notebook(name, name, "student")
        theirs, their_score = {g.name: g.score for g in nb.grades}, nb.score
    autograded = root / "autograded" / "student" / name / f"{name}.ipynb"
    assert theirs == {t.grade_id: t.points for t in ours.tests}, _disagreement(theirs, ours, autograded)
    assert their_score == ours.score
    solutions = sum(bool(c.metadata.get("nbgrader", {}).get("solution")) for c in lab.source.cells)
    assert solutions < 2 or 0 < ours.score < ours.max_score, "partial work should be graded"


def _disagreement(theirs: dict[str, float], ours, autograded: Path) -> str:
    """Per differing test: both scores, our grader's message and the errors nbgrader's kernel
    raised, in that test's cell and in any cell that is not a test (a setup cell that failed
    fails every test after it)."""
    errors: dict[str, list[str]] = {}
    for index, cell in enumerate(nbformat.read(autograded, as_version=4).cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                where = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"
                errors.setdefault(where, []).append(f"{output.ename}: {output.evalue}"[:300])
    lines = [f"{t.grade_id}: nbgrader {theirs.get(t.grade_id)}, ours {t.points} ({t.message or 'passed'}); "
             f"nbgrader's kernel raised {errors.get(t.grade_id, 'nothing')}"
             for t in ours.tests if theirs.get(t.grade_id) != t.points]
    graded = {t.grade_id for t in ours.tests}
    lines += [f"{where} (not a test) raised {raised} in nbgrader's kernel"
              for where, raised in errors.items() if where not in graded]
    return "nbgrader and our grader disagree:\n" + "\n".join(lines)
