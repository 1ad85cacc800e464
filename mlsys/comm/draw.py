"""Draw a schedule step by step: one column per round, one row per rank, an arrow per message."""

from __future__ import annotations

from typing import Any

from .schedules import Schedule

COLOURS = {"reduce": "tab:red", "copy": "tab:blue"}


def draw_schedule(schedule: Schedule, ax: Any = None, labels: bool = True) -> Any:
    """Plot ``schedule`` on a matplotlib axis (a new figure when ``ax`` is None); returns the axis.

    An arrow from (round r, rank s) to (round r+1, rank d) is a message from s to d in round r:
    red when the receiver reduces, blue when it copies; its label lists the chunks it carries.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        width = 1.2 + 1.1 * max(schedule.num_rounds, 1)
        _, ax = plt.subplots(figsize=(min(width, 14), 0.5 + 0.45 * schedule.world_size))
    p, rounds = schedule.world_size, schedule.num_rounds
    for rank in range(p):
        ax.plot(range(rounds + 1), [rank] * (rounds + 1), "o", color="0.6", markersize=4, zorder=3)
    for (rnd, src, dst), steps in sorted(schedule.messages().items()):
        colour = COLOURS[steps[0].op]
        ax.annotate("", xy=(rnd + 1, dst), xytext=(rnd, src),
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2, "alpha": 0.8})
        if labels and len(schedule.chunks) > 1:
            chunks = ",".join(str(s.chunk) for s in steps)
            # a third of the way along the arrow, so labels of crossing arrows do not collide
            ax.text(rnd + 0.33, src + 0.33 * (dst - src), chunks, fontsize=7, color=colour,
                    ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    ax.set_yticks(range(p))
    ax.set_yticklabels([f"rank {r}" for r in range(p)])
    ax.set_xticks(range(rounds + 1))
    ax.set_xlabel("round")
    ax.invert_yaxis()
    ax.set_title(f"{schedule.algorithm} {schedule.collective}, p={p} "
                 f"(red: reduce, blue: copy; numbers: chunks)", fontsize=9)
    return ax
