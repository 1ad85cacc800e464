"""Tiny hand-checkable traces for the scheduling tests (a uniquely named module, not conftest)."""

from __future__ import annotations

from simulators.scheduling import Job, Trace


def jobs(*rows: tuple[float, int, float]) -> Trace:
    """A trace from ``(arrival, gpus, work)`` rows, ids ``"0"``, ``"1"``, ..."""
    return Trace("tiny", [Job(str(i), a, g, w) for i, (a, g, w) in enumerate(rows)])
