"""The one event log every simulator writes: spans of activity on named resources.

A :class:`Recorder` turns into metrics (busy time, utilization), a matplotlib timeline and a
Chrome-trace JSON file that opens in Perfetto (ui.perfetto.dev) or chrome://tracing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Event:
    """``name`` ran on ``resource`` from ``start`` to ``end`` (seconds of simulated time)."""

    name: str
    resource: str
    start: float
    end: float
    category: str = ""
    group: str = ""
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start


class Recorder:
    """Collects :class:`Event` spans; answers metric queries and exports them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, name: str, resource: str, start: float, end: float, *, category: str = "",
               group: str = "", **args: Any) -> Event:
        """Add one span; ``end`` must not precede ``start``."""
        if end < start:
            raise ValueError(f"event {name!r} on {resource!r} ends ({end}) before it starts ({start})")
        event = Event(name, resource, float(start), float(end), category, group, args)
        self.events.append(event)
        return event

    def __len__(self) -> int:
        return len(self.events)

    @property
    def resources(self) -> list[str]:
        return sorted({e.resource for e in self.events})

    @property
    def makespan(self) -> float:
        return max((e.end for e in self.events), default=0.0)

    def busy_time(self, resource: str, category: str | None = None) -> float:
        """Time ``resource`` spent in spans (overlapping spans on one resource count once)."""
        spans = sorted((e.start, e.end) for e in self.events
                       if e.resource == resource and (category is None or e.category == category))
        total, cur_start, cur_end = 0.0, None, None
        for s, t in spans:
            if cur_end is None or s > cur_end:
                if cur_end is not None:
                    total += cur_end - cur_start
                cur_start, cur_end = s, t
            else:
                cur_end = max(cur_end, t)
        if cur_end is not None:
            total += cur_end - cur_start
        return total

    def utilization(self, resources: Iterable[str] | None = None, horizon: float | None = None,
                    category: str | None = None) -> float:
        """Mean fraction of ``horizon`` (default: the makespan) that ``resources`` were busy."""
        resources = list(self.resources if resources is None else resources)
        horizon = self.makespan if horizon is None else horizon
        if not resources or horizon <= 0:
            return 0.0
        return sum(self.busy_time(r, category) for r in resources) / (len(resources) * horizon)

    def to_chrome_trace(self, time_unit: float = 1e6) -> dict[str, Any]:
        """Chrome trace-event JSON: one process per group, one thread per resource."""
        pids: dict[str, int] = defaultdict(lambda: len(pids))
        tids: dict[str, int] = defaultdict(lambda: len(tids))
        trace = []
        for e in self.events:
            trace.append({"name": e.name, "cat": e.category or "event", "ph": "X",
                          "ts": e.start * time_unit, "dur": e.duration * time_unit,
                          "pid": pids[e.group], "tid": tids[e.resource], "args": e.args})
        meta = [{"name": "process_name", "ph": "M", "pid": pid, "args": {"name": g or "simulation"}}
                for g, pid in pids.items()]
        meta += [{"name": "thread_name", "ph": "M", "pid": pids[self._group_of(r)], "tid": tid,
                  "args": {"name": r}} for r, tid in tids.items()]
        return {"traceEvents": meta + trace, "displayTimeUnit": "ms"}

    def _group_of(self, resource: str) -> str:
        return next(e.group for e in self.events if e.resource == resource)

    def save_chrome_trace(self, path: str | Path) -> Path:
        """Write the Chrome trace to ``path`` (open it in Perfetto)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_chrome_trace()))
        return path

    def plot_timeline(self, ax: Any = None, resources: list[str] | None = None,
                      color_by: str = "category", title: str | None = None) -> Any:
        """A Gantt chart of the spans, one row per resource; returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        resources = resources or self.resources
        if ax is None:
            _, ax = plt.subplots(figsize=(10, 0.35 * len(resources) + 1.2))
        keys = sorted({getattr(e, color_by) or e.name for e in self.events})
        cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
        colors = {k: cmap(i % cmap.N) for i, k in enumerate(keys)}
        row = {r: i for i, r in enumerate(resources)}
        for e in self.events:
            if e.resource in row:
                key = getattr(e, color_by) or e.name
                ax.broken_barh([(e.start, e.duration)], (row[e.resource] - 0.4, 0.8),
                               color=colors[key], label=key)
        ax.set_yticks(range(len(resources)), resources)
        ax.invert_yaxis()
        ax.set_xlabel("time (s)")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        if 1 < len(unique) <= 12:
            ax.legend(unique.values(), unique.keys(), loc="upper right", fontsize="small")
        if title:
            ax.set_title(title)
        return ax
