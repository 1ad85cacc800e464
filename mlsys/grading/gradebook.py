"""The gradebook: saved after every submission, complete only when the batch is.

While a batch runs, every finished report is added to ``gradebook.partial.json`` (rewritten
atomically: a new file, then a rename), so a killed or interrupted grader loses nothing and
``mlsys lab grade --resume`` picks up where it stopped. Only a finished batch writes
``gradebook.csv`` (a column per test), ``gradebook.json`` (every report in full, messages
included) and ``feedback/<student>[-<lab>].md``, and then removes the partial file: a gradebook
that looks complete is complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .runner import Report

PARTIAL = "gradebook.partial.json"


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Gradebook:
    """The reports of one grading run in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.reports: dict[tuple[str, str], Report] = {}

    @property
    def partial(self) -> Path:
        return self.folder / PARTIAL

    def resume(self) -> dict[tuple[str, str], Report]:
        """The reports of an earlier run here (its partial file, else its finished gradebook),
        which this run then keeps; ``{}`` when there is none."""
        for path, key in ((self.partial, "reports"), (self.folder / "gradebook.json", None)):
            if path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                for item in data[key] if key else data:
                    report = Report.from_json(item)
                    self.reports[(report.student, report.lab)] = report
                break
        return dict(self.reports)

    def add(self, report: Report) -> None:
        """Record one report and save the partial gradebook."""
        self.reports[(report.student, report.lab)] = report
        _atomic_write(self.partial, json.dumps(
            {"complete": False, "reports": [r.to_json() for r in self.reports.values()]},
            indent=1))

    def finish(self, order: Sequence[tuple[str, str]] | None = None) -> dict[str, Path]:
        """Write the complete gradebook (in ``order`` of (student, lab), else as added) and
        remove the partial file; returns the paths written."""
        keys = [k for k in (order or []) if k in self.reports] or list(self.reports)
        paths = write_gradebook([self.reports[k] for k in keys], self.folder)
        self.partial.unlink(missing_ok=True)
        return paths


def write_gradebook(reports: Sequence[Report], folder: Path) -> dict[str, Path]:
    """Write ``gradebook.csv``, ``gradebook.json`` and ``feedback/<student>[-<lab>].md``.

    The CSV has one row per (student, lab) with a column per test id, the total and the maximum;
    the JSON holds every report in full (messages and notes included).
    """
    folder = Path(folder)
    (folder / "feedback").mkdir(parents=True, exist_ok=True)
    several_labs = len({r.lab for r in reports}) > 1
    for r in reports:
        name = f"{r.student}-{r.lab}" if several_labs else r.student
        _atomic_write(folder / "feedback" / f"{_safe(name)}.md", feedback(r))
    test_ids = list(dict.fromkeys(t.grade_id for r in reports for t in r.tests))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["student", "lab", *test_ids, "score", "max_score"])
    for r in reports:
        points = {t.grade_id: t.points for t in r.tests}
        writer.writerow([r.student, r.lab, *(_num(points.get(i, "")) for i in test_ids),
                         _num(r.score), _num(r.max_score)])
    csv_path, json_path = folder / "gradebook.csv", folder / "gradebook.json"
    _atomic_write(json_path, json.dumps([r.to_json() for r in reports], indent=2))
    _atomic_write(csv_path, table.getvalue())
    return {"csv": csv_path, "json": json_path, "feedback": folder / "feedback"}


def feedback(report: Report) -> str:
    """A learner-readable Markdown report: one line per test, then what went wrong in the run."""
    lines = [f"# {report.lab}: {report.student}", "",
             f"**Score: {_num(report.score)} / {_num(report.max_score)}**", "",
             "| test | points | result |", "| --- | --- | --- |"]
    for t in report.tests:
        result = "passed" if t.passed else f"failed: {t.message or 'no message'}"
        lines.append(f"| {t.grade_id} | {_num(t.points)} / {_num(t.max_points)} | "
                     f"{result.replace('|', '/').replace(chr(10), ' ')} |")
    if report.notes:
        lines += ["", "Notes from running your notebook:", ""]
        lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _num(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
