"""Dead-code elimination."""

from __future__ import annotations

from ..ir import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    """Drop nodes and constants no output depends on.

    Preserves: every output value. Impure nodes stay even when unused (a dropout mask advances
    the random generator, so removing it would change the masks drawn after it).
    """
    live = set(graph.outputs)
    kept = []
    for n in reversed(graph.nodes):
        if n.out in live or not n.pure:
            kept.append(n)
            live.update(n.inputs)
    consts = {v: a for v, a in graph.consts.items() if v in live}
    return graph.replace(nodes=tuple(reversed(kept)), consts=consts)
