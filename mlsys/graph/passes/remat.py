"""Rematerialization (activation checkpointing) under a memory budget."""

from __future__ import annotations

from ..ir import Graph, Node, Var, fresh
from ..memory import live_profile, root_of, storages

MAX_DEPTH = 8


def _clone_chain(v: Var, at: int, graph: Graph, producer: dict[Var, Node], ends: dict[Var, int],
                 roots: dict[Var, Var | None], depth: int, made: dict[Var, Var],
                 chain: list[Node]) -> Var | None:
    """A recomputed copy of ``v`` for use at node ``at``, appending the nodes to ``chain``;
    None when that would need an impure node or more than ``depth`` levels."""
    if v in made:
        return made[v]
    root = roots.get(v)
    if root is None or ends[root] >= at:
        return v  # an input, a constant, or still live there anyway
    n = producer[v]
    if depth == 0 or not n.pure:
        return None
    inputs = []
    for u in n.inputs:
        w = _clone_chain(u, at, graph, producer, ends, roots, depth - 1, made, chain)
        if w is None:
            return None
        inputs.append(w)
    copy = n.replace(inputs=tuple(inputs), out=fresh(n.out.spec))
    chain.append(copy)
    made[v] = copy.out
    return copy.out


def _recompute(graph: Graph, v: Var) -> tuple[Graph, int] | None:
    """Recompute ``v`` before the uses after its longest idle gap; returns (graph, extra FLOPs)."""
    index = {n.out: i for i, n in enumerate(graph.nodes)}
    positions = [i for i, n in enumerate(graph.nodes) if v in n.inputs]
    if not positions or v in graph.outputs:
        return None
    points = [index[v], *positions]
    gap, at = max((points[k + 1] - points[k], points[k + 1]) for k in range(len(points) - 1))
    if gap < 2:
        return None
    roots = root_of(graph)
    ends = {r: s.end for r, s in storages(graph).items()}
    producer = graph.producers()
    chain: list[Node] = []
    # v itself must be recomputed: pretend it dies before ``at``
    ends_without_v = {**ends, roots[v]: at - 1} if roots[v] is v else ends
    new_v = _clone_chain(v, at, graph, producer, ends_without_v, roots, MAX_DEPTH, {}, chain)
    if new_v is None or new_v is v:
        return None
    nodes = list(graph.nodes)
    for i in range(at, len(nodes)):
        if v in nodes[i].inputs:
            nodes[i] = nodes[i].replace(inputs=tuple(new_v if u is v else u for u in nodes[i].inputs))
    nodes[at:at] = chain
    return graph.replace(nodes=tuple(nodes)), sum(n.cost().flops for n in chain)


def _pressure(graph: Graph) -> tuple[int, int]:
    """(peak, live bytes summed over the nodes): each round of the greedy lowers the peak or,
    when no single recomputation can (the peak often sits on a plateau several nodes wide),
    lowers the sum without raising the peak, which opens the way for the next round."""
    profile = live_profile(graph)
    return max(profile, default=0), sum(profile)


def rematerialize(graph: Graph, budget_bytes: int) -> Graph:
    """Recompute activations instead of keeping them, until the peak of live bytes fits
    ``budget_bytes`` (or nothing more helps).

    Greedy, in the spirit of Chen et al., "Training Deep Nets with Sublinear Memory Cost" (2016):
    each round tries every value that sits idle across a gap between its uses (a forward
    activation waiting for the backward pass), recomputes it just before its late uses from
    values live there (up to eight levels deep), and keeps the candidate that lowers the peak
    most per recomputed FLOP — or, when none does, the one that removes the most live bytes
    (summed over the program) per FLOP without raising the peak. When the budget cannot be
    met, the cheapest graph reaching the lowest peak found is returned. Impure nodes are never
    recomputed (a dropout mask drawn twice would differ). Preserves: every output value.
    """
    if budget_bytes < 0:
        raise ValueError(f"rematerialize: budget_bytes must be >= 0, got {budget_bytes}")
    peak, total = _pressure(graph)
    lowest = (peak, graph)  # the first graph to reach the lowest peak: the cheapest one
    while peak > budget_bytes:
        best = None
        produced = graph.producers()
        for v in sorted({u for n in graph.nodes for u in n.inputs if u in produced},
                        key=lambda u: u.id):
            tried = _recompute(graph, v)
            if tried is None:
                continue
            new_peak, new_total = _pressure(tried[0])
            if new_peak < peak:  # lowering the peak comes first, then the live bytes overall
                score = (1, (peak - new_peak) / (tried[1] + 1))
            elif new_total < total and new_peak == peak:
                score = (0, (total - new_total) / (tried[1] + 1))
            else:
                continue
            if best is None or score > best[0]:
                best = (score, tried[0], new_peak, new_total)
        if best is None:
            break
        _, graph, peak, total = best
        if peak < lowest[0]:
            lowest = (peak, graph)
    return graph if peak <= budget_bytes else lowest[1]
