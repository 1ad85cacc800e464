"""The lab format: student versions, hidden tests, validation of sources."""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mlsys.grading import labs, notebook


def _meta(**kw):
    return {"nbgrader": {"grade": False, "solution": False, "locked": False,
                         "schema_version": 3, **kw}}


def _lab_nb():
    return new_notebook(cells=[
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                      metadata=_meta(solution=True, grade_id="f")),
        new_code_cell("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(5) == 10\n"
                      "### END HIDDEN TESTS", metadata=_meta(grade=True, locked=True,
                                                             grade_id="t", points=3)),
    ])


def test_student_version_stubs_solutions_and_drops_hidden_tests() -> None:
    student = notebook.student_version(_lab_nb())
    assert student.cells[0].source == ("def f(x):\n    # YOUR CODE HERE\n"
                                       "    raise NotImplementedError()")
    assert student.cells[1].source == "assert f(1) == 2"
    (test,) = notebook.graded_tests(_lab_nb())
    assert test.source == "assert f(1) == 2\nassert f(5) == 10" and test.has_hidden
    assert test.visible == "assert f(1) == 2" and test.points == 3.0


@pytest.mark.parametrize("source, error", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
])
def test_broken_markers_are_reported(source: str, error: str) -> None:
    nb = new_notebook(cells=[new_code_cell(source, metadata=_meta(solution=True, grade_id="s"))])
    with pytest.raises(notebook.LabFormatError, match=error):
        notebook.student_version(nb)


def test_graded_cells_need_ids_points_and_unique_ids() -> None:
    nb = _lab_nb()
    nb.cells[1].metadata.nbgrader.points = 0
    with pytest.raises(notebook.LabFormatError, match="positive points"):
        notebook.graded_tests(nb)
    nb = _lab_nb()
    nb.cells.append(nb.cells[1])
    with pytest.raises(notebook.LabFormatError, match=r"\['t'\]"):
        notebook.graded_tests(nb)


def test_a_solution_marker_outside_a_solution_cell_is_refused() -> None:
    nb = new_notebook(cells=[new_code_cell("### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS")])
    with pytest.raises(notebook.LabFormatError, match="outside"):
        notebook.student_version(nb)


@pytest.mark.parametrize("name", list(labs.available()))
def test_shipped_labs_are_well_formed(name: str) -> None:
    lab = labs.get(name)
    student = lab.student_notebook()
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert all(t.has_hidden for t in lab.tests), "every test should have hidden parts"
    assert lab.points == sum(t.points for t in lab.tests) > 0 and lab.chapter
    for test in lab.tests:  # hidden parts never reach the student
        hidden = test.source[len(test.visible):].strip()
        assert hidden and hidden not in text


def test_unknown_labs_and_bad_folders_get_clear_errors(tmp_path) -> None:
    with pytest.raises(KeyError, match="unknown lab 'nope'; available labs: .*autodiff"):
        labs.get("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        labs.available(tmp_path / "missing")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(notebook.LabFormatError, match="not a readable notebook"):
        notebook.read(broken)
