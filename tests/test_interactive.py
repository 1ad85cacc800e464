"""Slider figures: one frame per combination, controls in the HTML, clear errors on bad grids."""

from __future__ import annotations

import base64
import re

import matplotlib.pyplot as plt
import pytest

from mlsys.interactive import MAX_FRAMES, slider_figure


def draw(slope=1.0, style="solid"):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, slope], linestyle=style)
    return fig, f"slope {slope}"


def test_every_combination_is_drawn_and_embedded() -> None:
    fig = slider_figure(draw, {"slope": [0.5, 1.0, 2.0], "style": ["solid", "dashed"]},
                        defaults={"slope": 1.0}, title="lines")
    assert len(fig.frames) == 6
    page = fig._repr_html_()
    assert page.count('type="range"') == 1 and page.count("<select") == 1
    assert "<script src" not in page and "http" not in page
    embedded = set(re.findall(r'"([0-9],[0-9])": "([A-Za-z0-9+/=]+)"', page))
    assert {key for key, _ in embedded} == {f"{i},{j}" for i in range(3) for j in range(2)}
    png, caption = fig.frame(slope=2.0, style="dashed")
    assert caption == "slope 2.0" and png.startswith(b"\x89PNG")
    assert fig._repr_png_() == fig.frame(slope=1.0)[0]
    assert base64.b64encode(fig.frame(slope=1.0)[0]).decode() in page  # the default frame shows first
    assert fig.frame(slope=0.5)[0] != fig.frame(slope=2.0)[0]


def test_bad_grids_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="at most"):
        slider_figure(draw, {"slope": list(range(MAX_FRAMES + 1))})
    with pytest.raises(ValueError, match="empty: \\['slope'\\]"):
        slider_figure(draw, {"slope": []})
    with pytest.raises(ValueError, match="default slope=3 is not among"):
        slider_figure(draw, {"slope": [1, 2]}, defaults={"slope": 3})
    with pytest.raises(TypeError, match="expected a matplotlib Figure"):
        slider_figure(lambda slope: None, {"slope": [1]})


def test_tables_render_as_html_and_as_aligned_text() -> None:
    from mlsys.bench.report import Table

    table = Table([{"policy": "fifo", "jct": 12.3456}, {"policy": "<las>", "jct": None}], caption="JCT")
    assert str(table).splitlines() == ["JCT", "policy    jct", "------  -----", "  fifo  12.35",
                                       " <las>      -"]
    page = table._repr_html_()
    assert "<th>policy</th>" in page and "<td>&lt;las&gt;</td>" in page and "<caption>JCT</caption>" in page
