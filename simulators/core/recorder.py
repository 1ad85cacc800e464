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


# One colour per kind of work, in every timeline of the course: compute in blues and greens,
# communication in oranges and reds, overheads in browns and greys, idle in light grey.
KIND_COLORS: dict[str, str] = {
    "F": "#1f77b4", "forward": "#1f77b4", "compute": "#1f77b4", "parallel": "#1f77b4",
    "matmul": "#1f77b4", "B": "#2ca02c", "backward": "#2ca02c", "memory": "#17becf",
    "serial": "#9467bd", "optimizer": "#8c564b",
    "comm": "#ff7f0e", "allreduce": "#ff7f0e", "dp-comm": "#ff7f0e", "pull": "#ff7f0e",
    "push": "#ffbb78", "p2p": "#d62728",
    "restore": "#7f7f7f", "wait": "#b0b0b0", "idle": "#e3e3e3",
}
_IDLE = ("wait", "idle")


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
        group_of: dict[str, str] = {}
        trace = []
        for e in self.events:
            group_of.setdefault(e.resource, e.group)
            trace.append({"name": e.name, "cat": e.category or "event", "ph": "X",
                          "ts": e.start * time_unit, "dur": e.duration * time_unit,
                          "pid": pids[e.group], "tid": tids[e.resource], "args": e.args})
        meta = [{"name": "process_name", "ph": "M", "pid": pid, "args": {"name": g or "simulation"}}
                for g, pid in pids.items()]
        meta += [{"name": "thread_name", "ph": "M", "pid": pids[group_of[r]], "tid": tid,
                  "args": {"name": r}} for r, tid in tids.items()]
        return {"traceEvents": meta + trace, "displayTimeUnit": "ms"}

    def save_chrome_trace(self, path: str | Path) -> Path:
        """Write the Chrome trace to ``path`` (open it in Perfetto)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_chrome_trace()))
        return path

    def plot_timeline(self, ax: Any = None, resources: list[str] | None = None,
                      color_by: str = "category", title: str | None = None, *,
                      labels: bool | None = None, idle: bool = True) -> Any:
        """A Gantt chart of the spans, one row per resource; returns the matplotlib axes.

        Kinds of work keep one colour in every figure (:data:`KIND_COLORS`: compute in blues and
        greens, communication in oranges and reds, idle in grey); other keys get colours that no
        kind uses. ``idle`` shades each row's gaps grey; ``labels`` writes each span's name on its
        bar (micro-batches ``F3``/``B3`` on a pipeline), by default wherever the name fits. The
        legend sits to the right of the axes, never over the data.
        """
        import matplotlib.pyplot as plt

        resources = resources or self.resources
        if ax is None:
            _, ax = plt.subplots(figsize=(10, 0.35 * len(resources) + 1.2))
        row = {r: i for i, r in enumerate(resources)}
        shown = [e for e in self.events if e.resource in row]
        colors = timeline_colors(getattr(e, color_by) or e.name for e in shown)
        end = max((e.end for e in shown), default=1.0)
        begin = min((e.start for e in shown), default=0.0)
        if idle and shown:
            for i in row.values():
                ax.broken_barh([(begin, end - begin)], (i - 0.4, 0.8), color=KIND_COLORS["idle"],
                               label="idle", zorder=0)
        # one collection per row, colour and width class: fast to draw; a thin white edge
        # separates neighbouring bars of one colour, except on bars too narrow to keep it
        narrow = 0.004 * (end - begin)
        bars: dict[tuple[int, str, bool], list[tuple[float, float]]] = defaultdict(list)
        for e in shown:
            key = getattr(e, color_by) or e.name
            bars[row[e.resource], key, e.duration >= narrow].append((e.start, e.duration))
        for (i, key, wide), spans in bars.items():
            ax.broken_barh(spans, (i - 0.4, 0.8), color=colors[key], edgecolor="white",
                           linewidth=0.4 if wide else 0.0, label=key, zorder=1)
        ax.set_xmargin(0)
        ax.autoscale_view(scaley=False)  # shared x axes keep the union of their data
        if labels or (labels is None and len(shown) <= 400):
            _label_spans(ax, shown, row, colors, color_by, force=bool(labels))
        ax.set_yticks(range(len(resources)), resources)
        ax.set_ylim(len(resources) - 0.5, -0.5)
        spec = ax.get_subplotspec()
        if len(ax.get_shared_x_axes().get_siblings(ax)) == 1 or spec is None or spec.is_last_row():
            ax.set_xlabel("time (s)")  # once under a column of axes that share it
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        kinds = list(KIND_COLORS)
        order = sorted(unique, key=lambda k: (k in _IDLE, k not in KIND_COLORS,
                                              kinds.index(k) if k in KIND_COLORS else 0, k))
        if 1 < len(unique) <= 14:
            ax.legend([unique[k] for k in order], order, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      borderaxespad=0.0, fontsize="small", frameon=False)
        if title:
            ax.set_title(title)
        return ax


def timeline_colors(keys: Iterable[str]) -> dict[str, Any]:
    """Colour of each key: its kind's colour, or (in sorted order) one no kind uses."""
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    reserved = {mcolors.to_hex(c) for c in KIND_COLORS.values()}
    free = [c for c in (*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors)
            if mcolors.to_hex(c) not in reserved and len(set(c)) > 1]  # no greys: grey is idle
    colors: dict[str, Any] = {}
    others = 0
    for key in sorted(set(keys)):
        if key in KIND_COLORS:
            colors[key] = KIND_COLORS[key]
        else:
            colors[key], others = free[others % len(free)], others + 1
    return colors


def _label_spans(ax: Any, events: list[Event], row: dict[str, int], colors: dict[str, Any],
                 color_by: str, force: bool) -> None:
    """Write each span's name on its bar where it fits (everywhere when ``force``)."""
    import matplotlib.colors as mcolors

    fig = ax.get_figure()
    lo, hi = ax.get_xlim()
    width_in = fig.get_size_inches()[0] * ax.get_position().width
    seconds_per_char = (hi - lo) * 0.6 * 6.5 / 72 / max(width_in, 1e-9)  # 6.5 pt text
    for e in events:
        if not force and e.duration < (len(e.name) + 0.5) * seconds_per_char:
            continue
        r, g, b = mcolors.to_rgb(colors[getattr(e, color_by) or e.name])
        ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
        ax.text(e.start + e.duration / 2, row[e.resource], e.name, ha="center", va="center",
                fontsize=6.5, color=ink, clip_on=True, zorder=2)
