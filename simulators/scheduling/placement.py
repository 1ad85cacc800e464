"""Placement strategies: which nodes a gang of ``k`` GPUs lands on.

Each strategy is a function ``(cluster, k) -> [(node, count), ...]`` or ``None`` when it will not
place the job now. Consolidation matters because a job spread over nodes synchronizes over the
network and runs slower (Tiresias, Gu et al. NSDI'19, section 2.3: communication-heavy models such
as VGG slow down markedly when spread, ResNets barely do).
"""

from __future__ import annotations

from collections.abc import Callable

from .cluster import Cluster

Placement = Callable[[Cluster, int], "list[tuple[int, int]] | None"]


def _largest_first(cluster: Cluster, k: int) -> list[tuple[int, int]] | None:
    """Fill the emptiest nodes first: the fewest nodes that hold ``k`` GPUs."""
    if k > cluster.free_gpus:
        return None
    out = []
    for free in range(cluster.spec.gpus_per_node, 0, -1):
        for node in sorted(cluster.buckets[free]):
            take = min(free, k)
            out.append((node, take))
            k -= take
            if k == 0:
                return out
    raise AssertionError("free GPU count out of sync with the node buckets")


def consolidated(cluster: Cluster, k: int) -> list[tuple[int, int]] | None:
    """Best fit on one node when ``k`` fits a node, else the fewest nodes (spans if it must)."""
    return _best_fit(cluster, k) or _largest_first(cluster, k)


def _best_fit(cluster: Cluster, k: int) -> list[tuple[int, int]] | None:
    """The fullest single node that still has ``k`` free GPUs."""
    for free in range(k, cluster.spec.gpus_per_node + 1):
        bucket = cluster.buckets[free]
        if bucket:
            return [(min(bucket), k)]
    return None


def strict(cluster: Cluster, k: int) -> list[tuple[int, int]] | None:
    """Like :func:`consolidated`, but a job that fits one node waits rather than span nodes."""
    if k <= cluster.spec.gpus_per_node:
        return _best_fit(cluster, k)
    return _largest_first(cluster, k)


def spread(cluster: Cluster, k: int) -> list[tuple[int, int]] | None:
    """One GPU per node, emptiest nodes first (load balancing, as naive schedulers do)."""
    if k > cluster.free_gpus:
        return None
    counts: dict[int, int] = {}
    order = [n for free in range(cluster.spec.gpus_per_node, 0, -1)
             for n in sorted(cluster.buckets[free])]
    while k:
        for node in order:
            if k and counts.get(node, 0) < cluster.free[node]:
                counts[node] = counts.get(node, 0) + 1
                k -= 1
    return sorted(counts.items())


PLACEMENTS: dict[str, Placement] = {"consolidated": consolidated, "strict": strict, "spread": spread}


def get_placement(name: str | Placement) -> Placement:
    """A placement function by name (``consolidated``, ``strict``, ``spread``) or as given."""
    if callable(name):
        return name
    try:
        return PLACEMENTS[name]
    except KeyError:
        raise ValueError(f"unknown placement {name!r}; expected one of {sorted(PLACEMENTS)}") from None
