"""Liveness analysis and memory planning.

A value needs memory from the node that defines it to the last node that reads it. Views
(reshape, permute, broadcast_to, getitem; sum_to when it has nothing to sum) share their base's
memory, so liveness is computed per *storage*: a base value together with all its views.

The planner first lets a fused elementwise node write its result over an input that dies at that
node (in place, which the executor honours); a storage and the ones written over it form one
group. It then packs groups into shared buffers with the "greedy by size" strategy of Pisarchyk
and Lee, "Efficient Memory Management for Deep Neural Net Inference" (2020): largest group first,
each into the first buffer whose groups are never live at the same time as it, else a new
buffer. This is the static version of what a caching allocator does at run time.

It reports three figures for a graph: ``naive_bytes`` (one buffer per value, nothing freed: what
a graph with no planning holds), ``peak_live_bytes`` (the most bytes live at any one node, a
lower bound for any plan with the same in-place choices) and ``planned_bytes`` (the buffers the
plan actually needs).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ops.registry import PRIMITIVES
from ..ops.shape import sum_to
from .ir import Graph, Node, Var

__all__ = ["VIEW_OPS", "is_view", "Storage", "storages", "root_of", "peak_live_bytes", "live_profile",
           "MemoryPlan", "plan_memory"]

VIEW_OPS = frozenset(name for name, prim in PRIMITIVES.items() if prim.view)


def is_view(node: Node) -> bool:
    """Whether the node's result may share its first input's memory (``sum_to`` does when it
    has nothing to sum: it returns its input)."""
    if node.op in VIEW_OPS:
        return True
    return node.op == sum_to.name and node.inputs[0].spec.shape == node.out.spec.shape


@dataclass(frozen=True)
class Storage:
    """Memory owned by ``root`` (defined at node ``start``), last read at node ``end``."""

    root: Var
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.root.spec.nbytes


def root_of(graph: Graph) -> dict[Var, Var | None]:
    """Each node's value mapped to the value owning its memory (None: an input or constant's)."""
    roots: dict[Var, Var | None] = {v: None for v in (*graph.inputs, *graph.consts)}
    for n in graph.nodes:
        roots[n.out] = roots[n.inputs[0]] if is_view(n) else n.out
    return roots


def storages(graph: Graph) -> dict[Var, Storage]:
    """Live range of every storage the graph allocates (outputs live to the end)."""
    roots = root_of(graph)
    start: dict[Var, int] = {}
    end: dict[Var, int] = {}
    for i, n in enumerate(graph.nodes):
        if roots[n.out] is n.out:
            start[n.out] = end[n.out] = i
        for v in n.inputs:
            r = roots[v]
            if r is not None:
                end[r] = max(end[r], i)
    for v in graph.outputs:
        r = roots[v]
        if r is not None:
            end[r] = len(graph.nodes)
    return {r: Storage(r, start[r], end[r]) for r in start}


@dataclass(frozen=True)
class MemoryPlan:
    """Buffer assignment: ``buffer_of`` storage root -> buffer index; ``inplace`` maps a node's
    value to the input whose buffer it overwrites."""

    buffer_of: dict[Var, int]
    buffer_sizes: tuple[int, ...]
    inplace: dict[Var, Var]
    live: dict[Var, Storage]
    naive_bytes: int
    peak_live_bytes: int

    @property
    def planned_bytes(self) -> int:
        return sum(self.buffer_sizes)

    @property
    def saving(self) -> float:
        """Fraction of the naive footprint the plan saves."""
        return 1.0 - self.planned_bytes / self.naive_bytes if self.naive_bytes else 0.0

    def summary(self) -> dict[str, float]:
        return {"naive_bytes": self.naive_bytes, "peak_live_bytes": self.peak_live_bytes,
                "planned_bytes": self.planned_bytes, "buffers": len(self.buffer_sizes),
                "in_place": len(self.inplace), "saving": round(self.saving, 4)}


def peak_live_bytes(graph: Graph) -> int:
    """The most bytes the graph's own storages hold at any one node, each in memory of its own:
    the lower bound for ``plan_memory(graph, inplace=False)``. An in-place plan shares a dying
    input's memory with the result and can go below it; its bound is ``plan.peak_live_bytes``."""
    return max(live_profile(graph), default=0)


def live_profile(graph: Graph) -> list[int]:
    """Bytes of the graph's own storages live at each node (outputs stay live after the last)."""
    return _profile(storages(graph), len(graph.nodes))


def _profile(live: dict[Var, Storage], n_nodes: int) -> list[int]:
    delta = [0] * (n_nodes + 2)
    for s in live.values():
        delta[s.start] += s.nbytes
        delta[s.end + 1] -= s.nbytes
    running, profile = 0, []
    for d in delta[:-1]:
        running += d
        profile.append(running)
    return profile


def _peak(live: dict[Var, Storage], n_nodes: int) -> int:
    return max(_profile(live, n_nodes), default=0)


def plan_memory(graph: Graph, inplace: bool = True, share_outputs: bool = True) -> MemoryPlan:
    """Assign every storage a buffer so that no two live storages share one (see module doc).

    ``share_outputs=False`` gives each storage that holds a graph output a buffer of its own: an
    executor that keeps the other buffers from call to call hands those out to the caller."""
    live = storages(graph)
    roots = root_of(graph)
    group = {r: r for r in live}  # storage -> the storage whose memory it finally uses
    in_place: dict[Var, Var] = {}
    for i, n in enumerate(graph.nodes):
        donor = _donor(n, live, roots, i) if inplace else None
        if donor is not None:
            in_place[n.out] = donor
            group[n.out] = group[donor]
    span: dict[Var, list[int]] = {}
    for r, s in live.items():
        g = span.setdefault(group[r], [s.start, s.end])
        g[0], g[1] = min(g[0], s.start), max(g[1], s.end)
    merged = {g: Storage(g, a, b) for g, (a, b) in span.items()}
    alone = set() if share_outputs else {group[roots[v]] for v in graph.outputs
                                         if roots[v] is not None}
    sizes: list[int] = []
    holds: list[list[Storage]] = []
    private: set[int] = set()  # buffers of outputs, when they are not shared
    buffer_of_group: dict[Var, int] = {}
    for s in sorted(merged.values(), key=lambda s: (-s.nbytes, s.start)):
        fits = (b for b, held in enumerate(holds) if s.root not in alone and b not in private
                and all(s.end < t.start or t.end < s.start for t in held))
        b = next(fits, None)
        if b is None:
            sizes.append(s.nbytes)
            holds.append([])
            b = len(sizes) - 1
            if s.root in alone:
                private.add(b)
        holds[b].append(s)
        buffer_of_group[s.root] = b
    buffer_of = {r: buffer_of_group[group[r]] for r in live}
    naive = sum(s.nbytes for s in live.values())
    return MemoryPlan(buffer_of, tuple(sizes), in_place, live, naive,
                      _peak(merged, len(graph.nodes)))


def _donor(node: Node, live: dict[Var, Storage], roots: dict[Var, Var | None], i: int) -> Var | None:
    """An input of a fused elementwise node that dies here and may be overwritten in place."""
    if node.fused is None or node.fused.reduces:
        return None
    for v in node.inputs:
        r = roots[v]
        if (r is v and live[r].end == i and v.spec == node.out.spec
                and sum(roots[u] is r for u in node.inputs) == 1):
            return v
    return None
