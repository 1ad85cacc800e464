"""The gradebook (CSV and JSON, one column or entry per test) and per-student feedback files."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from .runner import Report


def write_gradebook(reports: Sequence[Report], folder: Path) -> dict[str, Path]:
    """Write ``gradebook.csv``, ``gradebook.json`` and ``feedback/<student>[-<lab>].md``.

    The CSV has one row per (student, lab) with a column per test id, the total and the maximum;
    the JSON holds every report in full (messages and notes included).
    """
    folder = Path(folder)
    (folder / "feedback").mkdir(parents=True, exist_ok=True)
    test_ids = list(dict.fromkeys(t.grade_id for r in reports for t in r.tests))
    csv_path = folder / "gradebook.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lab", *test_ids, "score", "max_score"])
        for r in reports:
            points = {t.grade_id: t.points for t in r.tests}
            writer.writerow([r.student, r.lab, *(_num(points.get(i, "")) for i in test_ids),
                             _num(r.score), _num(r.max_score)])
    json_path = folder / "gradebook.json"
    json_path.write_text(json.dumps([r.to_json() for r in reports], indent=2))
    several_labs = len({r.lab for r in reports}) > 1
    for r in reports:
        name = f"{r.student}-{r.lab}" if several_labs else r.student
        (folder / "feedback" / f"{_safe(name)}.md").write_text(feedback(r))
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
