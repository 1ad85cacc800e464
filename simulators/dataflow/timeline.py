"""A real run's spans (:class:`mlsys.classic.Run`) as a :class:`~simulators.core.Recorder`, so a
measured superstep draws and exports (Chrome trace) exactly like a simulated one."""

from __future__ import annotations

from mlsys.classic import Run
from simulators.core import Recorder


def timeline(run: Run, steps: range | None = None) -> Recorder:
    """The spans of ``run`` (only those of ``steps``, by their step number, if given; spans
    without one, such as Dask's task stream, are kept when they fall inside those steps)."""
    recorder = Recorder()
    spans = run.spans
    if steps is not None:
        known = [s for s in spans if s.step in steps]
        lo = min((s.start for s in known), default=0.0)
        hi = max((s.end for s in known), default=0.0)
        spans = [s for s in spans if s.step in steps or (s.step < 0 and lo <= s.start < hi)]
    for s in spans:
        if s.end > s.start:
            recorder.record(s.kind if s.step < 0 else f"step {s.step}", s.worker, s.start, s.end,
                            category=s.kind, group="nodes")
    return recorder
