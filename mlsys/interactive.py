"""Figures with sliders that stay interactive in a static page: precomputed frames, no kernel.

:func:`slider_figure` draws a matplotlib figure for every combination of the given parameter
values and returns an object whose HTML shows one frame with a control per parameter (a range
slider for numbers, a drop-down for anything else). Switching frames is a few lines of inline
JavaScript over images embedded in the page, so the figure works in the built book offline, in
JupyterLab and in a plain HTML export alike. Non-HTML front ends see the default frame.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Number

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

MAX_FRAMES = 120


@dataclass
class SliderFigure:
    """Precomputed frames of a figure and the controls that pick one (see :func:`slider_figure`)."""

    params: dict[str, list]
    defaults: dict[str, object]
    frames: dict[tuple[int, ...], tuple[bytes, str]]
    title: str = ""
    element_id: str = field(default_factory=lambda: f"mlsys-slider-{uuid.uuid4().hex[:10]}")

    def frame(self, **values) -> tuple[bytes, str]:
        """The PNG bytes and caption drawn for ``values`` (missing names take their defaults)."""
        chosen = {**self.defaults, **values}
        unknown = set(values) - set(self.params)
        if unknown:
            raise KeyError(f"unknown parameter(s) {sorted(unknown)}; expected {list(self.params)}")
        key = tuple(self.params[name].index(chosen[name]) for name in self.params)
        return self.frames[key]

    def _repr_png_(self) -> bytes:
        return self.frame()[0]

    def _repr_html_(self) -> str:
        start = tuple(self.params[name].index(self.defaults[name]) for name in self.params)
        images = {",".join(map(str, key)): base64.b64encode(png).decode("ascii")
                  for key, (png, _) in self.frames.items()}
        captions = {",".join(map(str, key)): text for key, (_, text) in self.frames.items()}
        controls = "".join(self._control(i, name, start[i]) for i, name in enumerate(self.params))
        png, caption = self.frames[start]
        root = self.element_id
        title = (f'<div class="mlsys-slider-title"><b>{html.escape(self.title)}</b></div>'
                 if self.title else "")
        return (
            f'<div id="{root}" class="mlsys-slider" data-frames="{len(self.frames)}">{title}'
            f'<div class="mlsys-slider-controls" style="display:flex;flex-wrap:wrap;gap:0.3em 1.2em;'
            f'font-size:0.9em">{controls}</div>'
            f'<img class="mlsys-slider-frame" alt="{html.escape(self.title or "figure")}" '
            f'style="max-width:100%" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'
            f'<pre class="mlsys-slider-caption" style="white-space:pre-wrap">{html.escape(caption)}</pre>'
            f"<script>(function(){{"
            f"var root=document.getElementById({json.dumps(root)});"
            f"var images={json.dumps(images)};var captions={json.dumps(captions)};"
            "var inputs=root.querySelectorAll('[data-param]');"
            "function show(){var key=[];inputs.forEach(function(el){key.push(el.value);"
            "var out=root.querySelector('[data-value-of=\"'+el.dataset.param+'\"]');"
            "if(out){out.textContent=JSON.parse(el.dataset.labels)[el.value];}});"
            "key=key.join(',');"
            "root.querySelector('.mlsys-slider-frame').src='data:image/png;base64,'+images[key];"
            "root.querySelector('.mlsys-slider-caption').textContent=captions[key];}"
            "inputs.forEach(function(el){el.addEventListener('input',show);el.addEventListener('change',show);});"
            "})();</script></div>"
        )

    def _control(self, position: int, name: str, selected: int) -> str:
        values = self.params[name]
        labels = json.dumps([_label(v) for v in values])
        attrs = (f'data-param="{html.escape(name)}" data-labels="{html.escape(labels)}" '
                 f'aria-label="{html.escape(name)}"')
        if all(isinstance(v, Number) and not isinstance(v, bool) for v in values):
            return (f'<label>{html.escape(name)} <input type="range" min="0" max="{len(values) - 1}" '
                    f'step="1" value="{selected}" {attrs}/> '
                    f'<output data-value-of="{html.escape(name)}">{html.escape(_label(values[selected]))}'
                    "</output></label>")
        options = "".join(f'<option value="{i}"{" selected" if i == selected else ""}>'
                          f"{html.escape(_label(v))}</option>" for i, v in enumerate(values))
        return f"<label>{html.escape(name)} <select {attrs}>{options}</select></label>"


def slider_figure(draw: Callable[..., Figure | tuple[Figure, str]], params: Mapping[str, Sequence], *,
                  defaults: Mapping[str, object] | None = None, title: str = "",
                  dpi: float | None = None) -> SliderFigure:
    """Draw ``draw(**values)`` for every combination of ``params`` and return the slider figure.

    ``draw`` returns a matplotlib figure, or ``(figure, caption)`` where the caption is text shown
    under the frame (a printed summary, say). ``defaults`` picks the frame shown first (each
    parameter's first value otherwise). At most ``MAX_FRAMES`` combinations: keep the grid small.
    ``dpi`` defaults to matplotlib's ``savefig.dpi`` (150 in the book, from chapters/matplotlibrc).
    """
    params = {name: list(values) for name, values in params.items()}
    empty = [name for name, values in params.items() if not values]
    if not params or empty:
        raise ValueError(f"each parameter needs at least one value; empty: {empty or 'no parameters'}")
    count = 1
    for values in params.values():
        count *= len(values)
    if count > MAX_FRAMES:
        raise ValueError(f"{count} combinations of {list(params)}; at most {MAX_FRAMES} frames are "
                         "embedded in a page: use fewer values per parameter")
    chosen = {name: values[0] for name, values in params.items()}
    for name, value in (defaults or {}).items():
        if name not in params:
            raise ValueError(f"default for unknown parameter {name!r}; expected one of {list(params)}")
        if value not in params[name]:
            raise ValueError(f"default {name}={value!r} is not among its values {params[name]}")
        chosen[name] = value
    frames = {}
    for key in itertools.product(*(range(len(v)) for v in params.values())):
        values = {name: params[name][i] for name, i in zip(params, key)}
        drawn = draw(**values)
        figure, caption = drawn if isinstance(drawn, tuple) else (drawn, "")
        if not isinstance(figure, Figure):
            raise TypeError(f"draw({values}) returned {type(figure).__name__}; expected a matplotlib Figure")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(figure)
        frames[key] = (buffer.getvalue(), str(caption))
    return SliderFigure(params, chosen, frames, title)


def _label(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


__all__ = ["MAX_FRAMES", "SliderFigure", "slider_figure"]
