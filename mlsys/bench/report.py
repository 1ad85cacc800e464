"""Timing and reporting shared by every benchmark: best-of-N timing, tables, JSON."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def time_it(fn: Callable[[], Any], *, repeat: int = 5, number: int | None = None,
            min_time: float = 0.05) -> float:
    """Seconds per call of ``fn``: the best of ``repeat`` runs of ``number`` calls each.

    ``number`` defaults to enough calls to take ``min_time`` seconds, so short calls are not
    dominated by timer resolution. The minimum is the figure least disturbed by other load.
    """
    fn()  # warm-up: JIT compilation, caches, allocations
    if number is None:
        number, elapsed = 1, 0.0
        while True:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - start
            if elapsed >= min_time or number >= 1 << 20:
                break
            number *= 2
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def time_side_by_side(fns: Sequence[Callable[[], Any]], *, rounds: int = 3, repeat: int = 3,
                      min_time: float = 0.05, settle: float = 0.0) -> list[float]:
    """Best seconds per call of each of ``fns``, timed in alternating rounds.

    Alternating makes a burst of load from other processes land on every variant, not one; the
    ratios between them are the figures. ``settle`` seconds of sleep before each timing let the
    previous variant's spinning worker threads (OpenMP, BLAS) go idle.
    """
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            if settle:
                time.sleep(settle)
            best[k] = min(best[k], time_it(fn, repeat=repeat, min_time=min_time))
    return best


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table with aligned columns; floats get 4 significant digits."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


@dataclass
class Table:
    """Rows shown as an HTML table in notebooks and the book, as aligned text elsewhere."""

    rows: Sequence[dict[str, Any]]
    columns: Sequence[str] | None = None
    caption: str = ""

    def __str__(self) -> str:
        text = format_table(self.rows, self.columns)
        return f"{self.caption}\n{text}" if self.caption else text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not self.rows:
            return "<p>(no rows)</p>"
        columns = list(self.columns or self.rows[0].keys())
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns)
                       + "</tr>" for r in self.rows)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="mlsys-table" style="font-variant-numeric:tabular-nums">{caption}'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def emit(rows: Sequence[dict[str, Any]], *, as_json: bool, title: str = "",
         columns: Sequence[str] | None = None, notes: Sequence[str] = ()) -> str:
    """Render benchmark rows as a table (with a title and notes) or as JSON."""
    if as_json:
        return json.dumps({"title": title, "rows": list(rows), "notes": list(notes)}, indent=2)
    parts = [title, format_table(rows, columns)] if title else [format_table(rows, columns)]
    parts += list(notes)
    return "\n".join(parts)
