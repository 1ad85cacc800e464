"""The lab notebook format: nbgrader's cell metadata and markers, and the student version.

A lab's source notebook marks cells the way nbgrader does, in ``cell.metadata["nbgrader"]``:

* solution cells (``"solution": true``) hold the reference between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``; the student version replaces that region with a stub;
* graded test cells (``"grade": true, "locked": true, "points": N, "grade_id": ID``) hold asserts;
  the part between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` is removed from the
  student version and restored only by the grader.

``notebook.metadata["mlsys"]`` names the lab and its chapter and may set time limits and
environment variables for the kernel that grades it; ``cell.metadata["mlsys"]`` holds what this
course adds per cell (a solution's forbidden library paths, a test's hints, a helper that runs in
the learner's kernel). ``labs/README.md`` documents every key.

Notebooks are read and written as plain JSON (:class:`Node` gives nbformat's attribute access):
this module runs inside learners' kernels, where importing nbformat (and the JSON-schema
machinery behind it) would cost seconds per kernel.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's default stub
TEXT_STUB = ["YOUR ANSWER HERE"]


class LabFormatError(ValueError):
    """A source notebook that breaks the lab format (markers, metadata, ids)."""


class Node(dict):
    """A dict with attribute access, like nbformat's ``NotebookNode``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def _node(value: Any) -> Any:
    if isinstance(value, dict):
        return Node({k: _node(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_node(v) for v in value]
    return value


@dataclass(frozen=True)
class GradedTest:
    """One graded test cell: its id, its points and its code with and without hidden tests."""

    grade_id: str
    points: float
    source: str  # everything, hidden tests included (markers removed): what the grader runs
    visible: str  # hidden tests removed: what the student sees and ``check`` runs
    hints: tuple[str, ...] = ()  # revealed one at a time by ``check`` while the test fails

    @property
    def has_hidden(self) -> bool:
        return self.source != self.visible


def _section(holder: Any, key: str) -> dict:
    metadata = holder.get("metadata") if isinstance(holder, dict) else None
    section = metadata.get(key) if isinstance(metadata, dict) else None
    return section if isinstance(section, dict) else {}


def nbgrader_meta(cell: Any) -> dict:
    """The cell's nbgrader metadata ({} for ordinary cells, and for malformed metadata)."""
    return _section(cell, "nbgrader")


def mlsys_meta(item: Any) -> dict:
    """The ``mlsys`` metadata of a cell or a notebook ({} when absent or malformed)."""
    return _section(item, "mlsys")


def is_test(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and bool(nbgrader_meta(cell).get("grade"))


def is_locked(cell: Any) -> bool:
    """An instructor cell the grader restores from the source (locked, not a solution)."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("locked")) and not meta.get("solution") and not meta.get("grade")


def _replace_regions(source: str, begin: str, end: str, stub: list[str] | None,
                     where: str) -> str:
    """Replace every ``begin``..``end`` region (markers included) by ``stub``, keeping indentation;
    ``stub=None`` keeps the region's content and drops only the markers."""
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        text = line.strip()
        if text == begin:
            if inside:
                raise LabFormatError(f"{where}: nested {begin!r}")
            inside = True
            if stub is not None:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + s for s in stub)
            continue
        if text == end:
            if not inside:
                raise LabFormatError(f"{where}: {end!r} without {begin!r}")
            inside = False
            continue
        if not inside or stub is None:
            out.append(line)
    if inside:
        raise LabFormatError(f"{where}: {begin!r} is never closed by {end!r}")
    return "\n".join(out)


def graded_test(cell: Any, where: str) -> GradedTest:
    """The :class:`GradedTest` of a graded cell, validating its metadata."""
    meta = nbgrader_meta(cell)
    grade_id, points = meta.get("grade_id"), meta.get("points")
    if not isinstance(grade_id, str) or not grade_id:
        raise LabFormatError(f"{where}: a graded cell needs a non-empty grade_id, got {grade_id!r}")
    if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
        raise LabFormatError(f"{where}: test {grade_id!r} needs positive points, got {points!r}")
    hints = mlsys_meta(cell).get("hints", [])
    if not isinstance(hints, list) or not all(isinstance(h, str) and h.strip() for h in hints):
        raise LabFormatError(f"{where}: metadata.mlsys.hints of test {grade_id!r} must be a list "
                             f"of non-empty strings, got {hints!r:.100}")
    return GradedTest(grade_id, float(points),
                      _replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None, where),
                      _replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, [], where),
                      tuple(hints))


def graded_tests(nb: Any, where: str = "notebook") -> list[GradedTest]:
    """The graded test cells of a source notebook, in order, with unique ids."""
    tests = [graded_test(c, f"{where} cell {i}") for i, c in enumerate(nb.cells) if is_test(c)]
    ids = [t.grade_id for t in tests]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise LabFormatError(f"{where}: grade ids {duplicated} are used by more than one cell")
    return tests


def student_version(nb: Any, where: str = "notebook") -> Any:
    """A copy of the source with solutions stubbed, hidden tests removed and outputs cleared.

    Follows nbgrader's ``generate_assignment``: code regions become ``raise
    NotImplementedError()``, markdown regions ``YOUR ANSWER HERE``; a solution cell without markers
    is replaced whole.
    """
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out.cells):
        here = f"{where} cell {i}"
        meta = nbgrader_meta(cell)
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        if meta.get("solution"):
            if BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source:
                cell.source = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, stub,
                                               here)
            else:
                cell.source = "\n".join(stub)
        if is_test(cell):
            cell.source = graded_test(cell, here).visible
        if meta.get("locked") and not meta.get("solution"):  # as nbgrader: read-only in Jupyter
            cell.metadata.update(editable=False, deletable=False)
        for marker in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN):
            if marker in cell.source:
                raise LabFormatError(f"{here}: {marker!r} outside a solution or graded cell")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return out


_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def absolute_links(nb: Any, resolve: Any) -> Any:
    """A copy of ``nb`` whose relative Markdown links ``[text](target)`` are replaced by
    ``resolve(target)`` (a link that still works once the notebook is copied elsewhere);
    absolute URLs and in-page anchors stay as they are."""
    out = copy.deepcopy(nb)

    def replace(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)
        return f"{match.group(1)}{resolve(target)}{match.group(3)}"

    for cell in out.cells:
        if cell.get("cell_type") == "markdown":
            cell.source = _LINK.sub(replace, cell.source)
    return out


def read(path: Any) -> Node:
    """Read a version-4 notebook (sources joined into strings), raising :class:`LabFormatError`
    with the path when the file is not one. Metadata that is not a mapping (anything a
    submission may hold) reads as empty, so no later lookup can fail on it."""
    try:
        with open(path, encoding="utf-8") as f:
            nb = _node(json.load(f))
        if not isinstance(nb, dict) or nb.get("nbformat") != 4:
            raise ValueError(f"expected a version-4 notebook, got nbformat "
                             f"{nb.get('nbformat') if isinstance(nb, dict) else None!r}")
        if not isinstance(nb.get("metadata"), dict):
            nb.metadata = Node()
        if not isinstance(nb.get("cells"), list):
            raise ValueError("'cells' must be a list")
        for cell in nb.cells:
            if not isinstance(cell, dict):
                raise ValueError(f"a cell must be an object, got {type(cell).__name__}")
            if cell.get("cell_type") not in ("code", "markdown", "raw"):
                raise ValueError(f"unknown cell type {cell.get('cell_type')!r}")
            if not isinstance(cell.get("metadata"), dict):
                cell.metadata = Node()
            if isinstance(cell.get("source"), list) and all(isinstance(x, str) for x in cell.source):
                cell.source = "".join(cell.source)
            if not isinstance(cell.get("source"), str):
                raise ValueError(f"a cell's source must be text, got {cell.get('source')!r:.80}")
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise LabFormatError(f"{path}: not a readable notebook ({type(error).__name__}: "
                             f"{error})") from None
    return nb


def dumps(nb: dict) -> str:
    """``nb`` as Jupyter writes it (one-space indent, sorted keys, sources as lines)."""
    out = copy.deepcopy(dict(nb))
    for cell in out["cells"]:
        if isinstance(cell.get("source"), str):
            cell["source"] = cell["source"].splitlines(keepends=True)
    return json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write(nb: dict, path: Path) -> Path:
    """Write ``nb`` to ``path`` as :func:`dumps` formats it."""
    Path(path).write_text(dumps(nb), encoding="utf-8")
    return Path(path)
