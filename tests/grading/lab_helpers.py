"""Build submissions from a lab: the reference for some parts, stubs for the rest."""

from __future__ import annotations

import copy
from pathlib import Path

from nbformat.v4 import new_code_cell

from mlsys.grading import labs, notebook


def submission(lab: labs.Lab, solved: set[str] | None = None, *,
               after: dict[str, list[str]] | None = None,
               replace: dict[str, str] | None = None):
    """The student version with the reference filled into the solution cells named in ``solved``
    (all when None), code cells inserted after the cells named in ``after``, and the sources of
    the cells named in ``replace`` swapped."""
    student = lab.student_notebook()
    out = copy.deepcopy(student)
    out.cells = []
    for ref, cell in zip(lab.source.cells, student.cells):
        gid = notebook.nbgrader_meta(cell).get("grade_id")
        cell = copy.deepcopy(cell)
        if notebook.nbgrader_meta(cell).get("solution") and (solved is None or gid in solved):
            cell.source = ref.source.replace(notebook.BEGIN_SOLUTION, "").replace(
                notebook.END_SOLUTION, "")
        if replace and gid in replace:
            cell.source = replace[gid]
        out.cells.append(cell)
        for source in (after or {}).get(gid, []):
            out.cells.append(new_code_cell(source))
    return out


def save(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return notebook.write(nb, path)
