"""The timeline drawing: one colour per kind of work in every figure, labelled spans, idle shown,
legends beside the data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mlsys.parallel.schedules import build  # noqa: E402
from simulators.core import Recorder  # noqa: E402
from simulators.core.recorder import KIND_COLORS, timeline_colors  # noqa: E402
from simulators.training import run_pipeline  # noqa: E402


def bar_colors(ax) -> dict[str, str]:
    """Legend label -> the hex colour of its bars."""
    return {text.get_text(): mcolors.to_hex(np.atleast_2d(handle.get_facecolor())[0])
            for text, handle in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}


def test_a_kind_keeps_its_colour_whatever_else_is_in_the_figure() -> None:
    one, two = Recorder(), Recorder()
    one.record("b0", "net", 0, 1, category="dp-comm")
    one.record("F0", "gpu", 0, 1, category="F")
    two.record("b0", "net", 0, 1, category="dp-comm")
    two.record("x", "gpu", 1, 2, category="aardvark")  # sorts first: must not shift the others
    colors = [bar_colors(r.plot_timeline()) for r in (one, two)]
    assert colors[0]["dp-comm"] == colors[1]["dp-comm"] == KIND_COLORS["dp-comm"]
    assert colors[0]["F"] == KIND_COLORS["F"]
    assert colors[1]["aardvark"] not in {mcolors.to_hex(c) for c in KIND_COLORS.values()}
    plt.close("all")


def test_compute_communication_and_idle_are_told_apart() -> None:
    compute = {KIND_COLORS[k] for k in ("F", "compute", "matmul", "parallel")}
    comm = {KIND_COLORS[k] for k in ("comm", "allreduce", "dp-comm")}
    assert len(compute) == 1 and len(comm) == 1 and compute != comm
    assert KIND_COLORS["idle"] not in compute | comm
    others = timeline_colors(["round 0", "round 1", "round 2"])
    assert len(set(map(str, others.values()))) == 3


def test_pipeline_bars_carry_their_micro_batch_and_gaps_show_as_idle() -> None:
    rec = Recorder()
    run = run_pipeline(build("1f1b", 2, 3), lambda s: 1.0 if s.phase == "F" else 2.0, recorder=rec)
    ax = rec.plot_timeline()
    texts = {t.get_text() for t in ax.texts}
    assert {"F0", "F1", "F2", "B0", "B1", "B2"} <= texts
    colors = bar_colors(ax)
    assert colors["idle"] == KIND_COLORS["idle"] and run.bubble_fraction > 0
    assert ax.get_xlim() == pytest.approx((0.0, run.makespan))
    plt.close("all")


def test_labels_are_left_out_where_they_do_not_fit_and_can_be_turned_off() -> None:
    rec = Recorder()
    rec.record("a long name for a short span", "gpu", 0, 0.001, category="compute")
    rec.record("wide", "gpu", 0.001, 10, category="compute")
    assert [t.get_text() for t in rec.plot_timeline().texts] == ["wide"]
    assert not rec.plot_timeline(labels=False).texts
    plt.close("all")


def test_the_legend_sits_beside_the_axes_not_over_the_data() -> None:
    rec = Recorder()
    for i, kind in enumerate(("F", "B", "p2p", "dp-comm")):
        rec.record(kind, f"r{i}", i, i + 5, category=kind)
    ax = rec.plot_timeline()
    fig = ax.get_figure()
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1
    plt.close("all")


def test_narrow_bars_keep_their_colour_instead_of_a_white_edge() -> None:
    rec = Recorder()
    rec.record("wide", "link", 0, 10, category="dp-comm")
    rec.record("thin", "link", 10, 10.001, category="dp-comm")
    ax = rec.plot_timeline(idle=False, labels=False)
    widths = sorted(float(np.max(c.get_linewidths())) for c in ax.collections)
    assert widths[0] == 0.0 < widths[-1]
    plt.close("all")
