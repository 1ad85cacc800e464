"""The lab format: student versions, hidden tests, metadata validation, links, the shipped labs."""

from __future__ import annotations

import copy
import re

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlsys.grading import labs, notebook

REPOSITORY = labs.BUILTIN_LABS.resolve().parent


def _meta(**kw):
    return {"nbgrader": {"grade": False, "solution": False, "locked": False,
                         "schema_version": 3, **kw}}


def _lab_nb():
    return new_notebook(cells=[
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                      metadata=_meta(solution=True, grade_id="f")),
        new_code_cell("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(5) == 10\n"
                      "### END HIDDEN TESTS", metadata={**_meta(grade=True, locked=True,
                                                                grade_id="t", points=3),
                                                         "mlsys": {"hints": ["double it"]}}),
    ], metadata={"mlsys": {"lab": "double", "chapter": "01_ml_systems_stack", "minutes": 5}})


def test_student_version_stubs_solutions_and_drops_hidden_tests() -> None:
    student = notebook.student_version(_lab_nb())
    assert student.cells[0].source == ("def f(x):\n    # YOUR CODE HERE\n"
                                       "    raise NotImplementedError()")
    assert student.cells[1].source == "assert f(1) == 2"
    (test,) = notebook.graded_tests(_lab_nb())
    assert test.source == "assert f(1) == 2\nassert f(5) == 10" and test.has_hidden
    assert test.visible == "assert f(1) == 2" and test.points == 3.0
    assert test.hints == ("double it",)


@pytest.mark.parametrize("source, error", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
])
def test_broken_markers_are_reported(source: str, error: str) -> None:
    nb = new_notebook(cells=[new_code_cell(source, metadata=_meta(solution=True, grade_id="s"))])
    with pytest.raises(notebook.LabFormatError, match=error):
        notebook.student_version(nb)


def test_graded_cells_need_ids_points_unique_ids_and_text_hints() -> None:
    nb = _lab_nb()
    nb.cells[1].metadata.nbgrader.points = 0
    with pytest.raises(notebook.LabFormatError, match="positive points"):
        notebook.graded_tests(nb)
    nb = _lab_nb()
    nb.cells.append(nb.cells[1])
    with pytest.raises(notebook.LabFormatError, match=r"\['t'\]"):
        notebook.graded_tests(nb)
    nb = _lab_nb()
    nb.cells[1].metadata.mlsys.hints = "one string"
    with pytest.raises(notebook.LabFormatError, match="hints"):
        notebook.graded_tests(nb)


def test_lab_metadata_is_validated(tmp_path) -> None:
    folder = tmp_path / "double"
    folder.mkdir()
    good = _lab_nb()
    notebook.write(good, folder / "double.ipynb")
    lab = labs.Lab.load(folder)
    assert lab.minutes == 5 and set(lab.interface) == {"f"}
    for change, error in ((lambda m: m.pop("minutes"), "minutes"),
                          (lambda m: m.update(minutes="soon"), "minutes"),
                          (lambda m: m.update(lab="other"), "must be 'double'"),
                          (lambda m: m.update(types="Step"), "types")):
        nb = copy.deepcopy(good)
        change(nb.metadata["mlsys"])
        notebook.write(nb, folder / "double.ipynb")
        with pytest.raises(notebook.LabFormatError, match=error):
            labs.Lab.load(folder)


def test_malformed_submission_metadata_reads_as_empty(tmp_path) -> None:
    nb = _lab_nb()
    nb.metadata = ["not", "a", "dict"]
    nb.cells[0].metadata = "nope"
    nb.cells[1].metadata = {"nbgrader": [1, 2], "mlsys": 3}
    path = tmp_path / "bad.ipynb"
    notebook.write(nb, path)
    read = notebook.read(path)
    assert notebook.mlsys_meta(read) == {} and notebook.nbgrader_meta(read.cells[0]) == {}
    assert notebook.nbgrader_meta(read.cells[1]) == {} and notebook.mlsys_meta(read.cells[1]) == {}


def test_relative_links_become_absolute() -> None:
    nb = new_notebook(cells=[new_markdown_cell(
        "[a](../../chapters/x.ipynb) [b](https://example.org/y) [c](#here) [d](z.md#part)")])
    out = notebook.absolute_links(nb, lambda target: f"ABS/{target}")
    assert out.cells[0].source == ("[a](ABS/../../chapters/x.ipynb) [b](https://example.org/y) "
                                   "[c](#here) [d](ABS/z.md#part)")


@pytest.mark.parametrize("name", list(labs.available()))
def test_shipped_labs_are_well_formed(name: str) -> None:
    lab = labs.get(name)
    student = lab.student_notebook()
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert all(t.has_hidden for t in lab.tests), "every test should have hidden parts"
    assert all(len(t.hints) >= 2 for t in lab.tests), "every test should have a hint ladder"
    assert lab.points == sum(t.points for t in lab.tests) > 0 and lab.chapter
    assert (REPOSITORY / "chapters" / f"{lab.chapter}.ipynb").is_file()
    assert lab.minutes > 0 and lab.interface
    seeded = [c.source for c in lab.source.cells if notebook.is_locked(c)]
    for test in lab.tests:  # hidden parts never reach the student, and seeds stay in them
        hidden = test.source[len(test.visible):].strip()
        assert hidden and hidden not in text
        assert "hidden_rng(" not in test.visible
        seeded.append(hidden)
    assert "hidden_rng(" not in text and any("hidden_rng(" in s for s in seeded)


@pytest.mark.parametrize("name", list(labs.available()))
def test_links_work_in_the_repository_and_after_get(name: str) -> None:
    lab = labs.get(name)
    links = [t for c in lab.source.cells if c.cell_type == "markdown"
             for t in re.findall(r"\]\(([^)\s]+)\)", c.source) if "://" not in t]
    assert links, "a lab links to its chapter"
    for target in links:
        assert (lab.folder / target.split("#")[0]).resolve().is_file(), target
    student = lab.student_notebook()
    for cell in student.cells:
        for target in re.findall(r"\]\(([^)\s]+)\)", cell.source if cell.cell_type ==
                                 "markdown" else ""):
            assert target.startswith(labs.REPOSITORY_URL), target
            path = target[len(labs.REPOSITORY_URL):].split("#")[0]
            assert (REPOSITORY / path).is_file(), target


def test_unknown_labs_and_bad_folders_get_clear_errors(tmp_path) -> None:
    with pytest.raises(KeyError, match="unknown lab 'nope'; available labs: .*autodiff"):
        labs.get("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        labs.available(tmp_path / "missing")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(notebook.LabFormatError, match="not a readable notebook"):
        notebook.read(broken)


@pytest.mark.parametrize("name", list(labs.available()))
def test_cell_ids_are_unique(name: str) -> None:
    ids = [c.get("id") for c in labs.get(name).source.cells]
    assert None not in ids and len(set(ids)) == len(ids)
