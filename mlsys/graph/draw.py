"""Drawing graphs: Graphviz DOT text, and a matplotlib rendering that needs no system package."""

from __future__ import annotations

from typing import Any

from .ir import Graph, Var, node_text, show_spec

_COLORS = {"input": "#cfe2f3", "const": "#eeeeee", "node": "#ffffff", "fused": "#fce5cd",
           "output": "#d9ead3"}


def _label(graph: Graph, v: Var) -> str:
    return graph.names.get(v, repr(v))


def _op(graph: Graph, n: Any) -> str:
    if n.fused is not None:
        return node_text(n).split(" = ", 1)[1].split(" %")[0]
    return n.op


def to_dot(graph: Graph, name: str = "graph") -> str:
    """The graph in Graphviz's DOT language (render with ``dot -Tsvg``), one box per node."""
    lines = [f"digraph {name} {{", "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    outputs = set(graph.outputs)
    for v in graph.inputs:
        lines.append(f'  v{v.id} [label="{_label(graph, v)}\\n{show_spec(v.spec)}", '
                     f'shape=ellipse, style=filled, fillcolor="{_COLORS["input"]}"];')
    for v in graph.consts:
        lines.append(f'  v{v.id} [label="const\\n{show_spec(v.spec)}", style=filled, '
                     f'fillcolor="{_COLORS["const"]}"];')
    for n in graph.nodes:
        kind = "output" if n.out in outputs else "fused" if n.fused is not None else "node"
        lines.append(f'  v{n.out.id} [label="{_op(graph, n)}\\n{show_spec(n.out.spec)}", '
                     f'style=filled, fillcolor="{_COLORS[kind]}"];')
        for v in n.inputs:
            lines.append(f"  v{v.id} -> v{n.out.id};")
    lines.append("}")
    return "\n".join(lines)


def _layers(graph: Graph) -> dict[Var, int]:
    """Depth of every value: inputs and constants at 0, a node one below its deepest input."""
    depth = {v: 0 for v in (*graph.inputs, *graph.consts)}
    for n in graph.nodes:
        depth[n.out] = 1 + max((depth[v] for v in n.inputs), default=0)
    return depth


def draw(graph: Graph, ax: Any = None, consts: bool = False, fontsize: float = 7) -> Any:
    """Draw the graph top to bottom with matplotlib (layered by depth); returns the Axes.

    Inputs are blue, fused groups orange, outputs green; constants are hidden unless ``consts``.
    """
    import matplotlib.pyplot as plt

    depth = _layers(graph)
    shown = [v for v in (*graph.inputs, *(graph.consts if consts else ()))] + \
        [n.out for n in graph.nodes]
    rows: dict[int, list[Var]] = {}
    for v in shown:
        rows.setdefault(depth[v], []).append(v)
    width = max(len(r) for r in rows.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2.0 + 1.6 * width, 18), 1.0 + 0.55 * len(rows)))
    pos = {v: ((k + 0.5) / len(r) * width, -d) for d, r in rows.items() for k, v in enumerate(r)}
    producer = graph.producers()
    outputs = set(graph.outputs)
    for n in graph.nodes:
        for v in n.inputs:
            if v in pos:
                ax.annotate("", xy=pos[n.out], xytext=pos[v], arrowprops={
                    "arrowstyle": "->", "color": "#888888", "lw": 0.6, "shrinkA": 6, "shrinkB": 6})
    for v, (x, y) in pos.items():
        n = producer.get(v)
        if n is None:
            kind, text = ("input", _label(graph, v)) if v in graph.inputs else ("const", "const")
        else:
            kind = "output" if v in outputs else "fused" if n.fused is not None else "node"
            text = _op(graph, n)
        ax.text(x, y, f"{text}\n{show_spec(v.spec)}", ha="center", va="center", fontsize=fontsize,
                family="monospace", bbox={"boxstyle": "round,pad=0.25", "fc": _COLORS[kind],
                                          "ec": "#666666", "lw": 0.6})
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-max(rows) - 0.7, 0.7)
    ax.axis("off")
    return ax
