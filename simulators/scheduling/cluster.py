"""A GPU cluster: switches of nodes of GPUs, with per-GPU bookkeeping that refuses double booking.

Nodes are bucketed by their number of free GPUs, so a placement finds a best-fit node in
``O(gpus_per_node)`` instead of scanning the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterSpec:
    """Shape of a cluster: ``switches`` x ``nodes_per_switch`` x ``gpus_per_node``."""

    switches: int = 1
    nodes_per_switch: int = 16
    gpus_per_node: int = 4

    def __post_init__(self) -> None:
        for name in ("switches", "nodes_per_switch", "gpus_per_node"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ClusterSpec.{name} must be an integer >= 1, got {value!r}")

    @property
    def nodes(self) -> int:
        return self.switches * self.nodes_per_switch

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @classmethod
    def with_gpus(cls, gpus: int, gpus_per_node: int = 8, nodes_per_switch: int = 32) -> ClusterSpec:
        """The smallest cluster of whole ``gpus_per_node`` nodes holding at least ``gpus`` GPUs."""
        if gpus < 1:
            raise ValueError(f"a cluster needs at least 1 GPU, got {gpus}")
        nodes = -(-gpus // gpus_per_node)
        per_switch = min(nodes, nodes_per_switch)
        return cls(-(-nodes // per_switch), per_switch, gpus_per_node)


class Cluster:
    """Live allocation state of a :class:`ClusterSpec`."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        g = spec.gpus_per_node
        self.free = [g] * spec.nodes
        self.free_ids = [list(range(g - 1, -1, -1)) for _ in range(spec.nodes)]
        self.buckets: list[set[int]] = [set() for _ in range(g + 1)]
        self.buckets[g] = set(range(spec.nodes))
        self.free_gpus = spec.gpus

    def switch_of(self, node: int) -> int:
        return node // self.spec.nodes_per_switch

    def allocate(self, counts: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Take ``count`` GPUs on each ``node``; returns ``(node, gpu)`` pairs."""
        taken = []
        for node, count in counts:
            if count > self.free[node]:
                raise RuntimeError(f"node {node} has {self.free[node]} free GPUs, asked for {count}")
            self._move(node, -count)
            ids = self.free_ids[node]
            taken += [(node, ids.pop()) for _ in range(count)]
        return taken

    def release(self, gpus: list[tuple[int, int]]) -> None:
        """Give back GPUs taken by :meth:`allocate`; releasing a free GPU is an error."""
        for node, gpu in gpus:
            if gpu in self.free_ids[node]:
                raise RuntimeError(f"GPU {gpu} of node {node} released twice")
            self.free_ids[node].append(gpu)
            self._move(node, 1)

    def _move(self, node: int, delta: int) -> None:
        self.buckets[self.free[node]].discard(node)
        self.free[node] += delta
        self.buckets[self.free[node]].add(node)
        self.free_gpus += delta

    def fragmentation(self) -> float:
        """Share of free GPUs on partly used nodes (unusable by a whole-node job); 0 if none free."""
        if self.free_gpus == 0:
            return 0.0
        whole = len(self.buckets[self.spec.gpus_per_node]) * self.spec.gpus_per_node
        return 1.0 - whole / self.free_gpus
