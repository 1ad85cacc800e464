"""Shared row handling for the trace readers: required columns, numeric fields, sorting, skips.

Every reader turns rows into :class:`~simulators.scheduling.job.Job` objects through
:class:`RowReader`, so a bad row always raises an error naming the file, the line, the column and
the value — or, with ``on_error="skip"``, lands in ``Trace.skipped`` with that same message.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ...data import open_text
from ..job import Job, Trace


class TraceError(ValueError):
    """A trace file that cannot be read as the format it claims to be."""


def open_csv(path: str | Path, required: Sequence[str]) -> tuple[Path, Iterable[tuple[int, dict]]]:
    """A header-checked CSV: ``(line number, row dict)`` pairs, line numbers counting the header."""
    path = Path(path)
    handle = open_text(path)
    reader = csv.DictReader(handle)
    if reader.fieldnames is None:
        raise TraceError(f"{path}: the file is empty; expected a header with {', '.join(required)}")
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        handle.close()
        raise TraceError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")

    def rows():
        with handle:
            yield from enumerate(reader, start=2)
    return path, rows()


def number(row: dict, column: str, *, integer: bool = False, minimum: float | None = 0.0) -> float:
    """``row[column]`` as a finite number (an int if ``integer``), at least ``minimum``."""
    raw = row.get(column)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise TraceError(f"column {column!r}: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise TraceError(f"column {column!r}: expected a finite number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise TraceError(f"column {column!r}: expected a value >= {minimum:g}, got {raw!r}")
    if integer:
        if value != int(value):
            raise TraceError(f"column {column!r}: expected an integer, got {raw!r}")
        return int(value)
    return value


def build_trace(name: str, path: Path, lines: Iterable[tuple[int, object]],
                make_job: Callable[[int, object], Job], *, on_error: str = "raise",
                sort: bool = False, max_gpus: int | None = None) -> Trace:
    """Jobs from ``(line, raw)`` pairs via ``make_job``, validated; see :func:`check_options`.

    ``sort=False`` rejects arrivals out of order; ``sort=True`` sorts them (stably) and says so in
    ``Trace.notes``. Jobs needing more than ``max_gpus`` GPUs are errors like any bad row.
    """
    check_options(on_error)
    trace = Trace(name, [], str(path))
    last = -math.inf
    for line, raw in lines:
        try:
            job = make_job(line, raw)
            if max_gpus is not None and job.gpus > max_gpus:
                raise TraceError(f"job {job.id} needs {job.gpus} GPUs but the cluster has {max_gpus}")
            if job.arrival < last and not sort:
                raise TraceError(f"job {job.id} arrives at {job.arrival:g} s, before the previous "
                                 f"row ({last:g} s); arrivals must be sorted (or pass sort=True)")
        except (TraceError, ValueError) as error:
            if on_error == "raise":
                raise TraceError(f"{path}, line {line}: {error}") from None
            trace.skipped.append((line, str(error)))
            continue
        last = max(last, job.arrival)
        trace.jobs.append(job)
    if not trace.jobs:
        raise TraceError(f"{path}: no jobs read ({len(trace.skipped)} rows skipped)")
    if sort and any(b.arrival < a.arrival for a, b in zip(trace.jobs, trace.jobs[1:])):
        trace.jobs.sort(key=lambda j: j.arrival)
        trace.notes.append("rows were not in arrival order; sorted by arrival time")
    if trace.skipped:
        trace.notes.append(f"skipped {len(trace.skipped)} invalid rows (see Trace.skipped)")
    return trace.validate(max_gpus)


def check_options(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
