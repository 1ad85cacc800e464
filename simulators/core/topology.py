"""Topologies: devices, switches and the directed alpha-beta links between them.

A :class:`Topology` is a graph whose endpoints are devices (GPUs) and whose inner vertices are
switches; every cable is a pair of directed :class:`Link` objects (full duplex), each with its own
bandwidth (bytes/s) and latency (s). Routes are shortest paths through switches only (fewest
hops, then fastest links), with equal-cost paths chosen by a deterministic hash of (source,
destination), as ECMP does.

Builders cover the shapes the course uses: :func:`ring`, :func:`switched` (one non-blocking
switch), :func:`fully_connected` and :func:`cluster` (nodes of ``k`` GPUs behind an NVSwitch, joined
by a rail-optimized or a leaf-spine fat-tree fabric, e.g. NVIDIA's DGX SuperPOD reference design).
"""

from __future__ import annotations

import heapq
import math
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol


class LinkLike(Protocol):
    """Anything with a bandwidth (bytes/s) and a latency (s), e.g. a hardware-catalog link."""

    @property
    def bandwidth(self) -> float: ...

    @property
    def latency(self) -> float: ...


@dataclass(frozen=True)
class LinkSpec:
    """Bandwidth (bytes/s, one direction) and latency (s) of one kind of link."""

    bandwidth: float
    latency: float
    kind: str = ""

    def __post_init__(self) -> None:
        _check_link(self.kind or "link", self.bandwidth, self.latency)


@dataclass(frozen=True)
class Link:
    """A directed link ``src -> dst``; the alpha-beta time of ``n`` bytes alone on it is
    ``latency + n / bandwidth``."""

    src: str
    dst: str
    bandwidth: float
    latency: float
    kind: str = "link"

    @cached_property
    def name(self) -> str:
        return f"{self.src}->{self.dst}"


def _check_link(what: str, bandwidth: float, latency: float) -> None:
    if not (isinstance(bandwidth, (int, float)) and math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"{what}: bandwidth must be a positive finite number of bytes/s, "
                         f"got {bandwidth!r}")
    if not (isinstance(latency, (int, float)) and math.isfinite(latency) and latency >= 0):
        raise ValueError(f"{what}: latency must be a non-negative finite number of seconds, "
                         f"got {latency!r}")


class Topology:
    """Devices, switches and directed links, with cached deterministic shortest-path routes."""

    def __init__(self, name: str = "topology") -> None:
        self.name = name
        self.devices: list[str] = []
        self.switches: list[str] = []
        self.links: dict[tuple[str, str], Link] = {}
        self._neighbors: dict[str, list[str]] = {}
        self._routes: dict[tuple[str, str], tuple[Link, ...]] = {}
        self._distances: dict[str, dict[str, tuple[int, float]]] = {}

    def __repr__(self) -> str:
        return (f"Topology({self.name!r}: {len(self.devices)} devices, {len(self.switches)} "
                f"switches, {len(self.links)} links)")

    def add_device(self, name: str) -> str:
        """Add an endpoint (a GPU or CPU process) called ``name``."""
        return self._add_vertex(name, self.devices)

    def add_switch(self, name: str) -> str:
        """Add a switch called ``name``; routes may pass through switches, never through devices."""
        return self._add_vertex(name, self.switches)

    def _add_vertex(self, name: str, into: list[str]) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"vertex names must be non-empty strings, got {name!r}")
        if name in self._neighbors:
            raise ValueError(f"{self.name}: {name!r} already exists")
        into.append(name)
        self._neighbors[name] = []
        return name

    def connect(self, a: str, b: str, spec: LinkLike, kind: str | None = None) -> None:
        """A full-duplex cable between ``a`` and ``b``: one directed link each way."""
        for v in (a, b):
            if v not in self._neighbors:
                raise KeyError(f"{self.name}: unknown vertex {v!r}; add it before connecting it")
        if a == b:
            raise ValueError(f"{self.name}: cannot connect {a!r} to itself")
        kind = kind or getattr(spec, "kind", None) or "link"
        _check_link(f"link {a}<->{b}", spec.bandwidth, spec.latency)
        for s, d in ((a, b), (b, a)):
            if (s, d) in self.links:
                raise ValueError(f"{self.name}: {s!r} and {d!r} are already connected")
            self.links[(s, d)] = Link(s, d, float(spec.bandwidth), float(spec.latency), kind)
            self._neighbors[s].append(d)
        self._routes.clear()
        self._distances.clear()

    def route(self, src: str, dst: str) -> tuple[Link, ...]:
        """The links a message from ``src`` to ``dst`` crosses (a shortest path via switches)."""
        key = (src, dst)
        if key not in self._routes:
            self._routes[key] = self._shortest_path(src, dst)
        return self._routes[key]

    def latency(self, src: str, dst: str) -> float:
        """End-to-end latency (alpha) of the route: the sum of its links' latencies."""
        return sum(link.latency for link in self.route(src, dst))

    def bandwidth(self, src: str, dst: str) -> float:
        """Bottleneck bandwidth of the route when it is uncontended (1/beta)."""
        return min(link.bandwidth for link in self.route(src, dst))

    def _shortest_path(self, src: str, dst: str) -> tuple[Link, ...]:
        for v in (src, dst):
            if v not in self.devices:
                raise KeyError(f"{self.name}: {v!r} is not a device; devices are "
                               f"{_preview(self.devices)}")
        if src == dst:
            raise ValueError(f"{self.name}: source and destination are both {src!r}")
        dist = self._distances_to(dst)
        if src not in dist:
            raise ValueError(f"{self.name}: no route from {src!r} to {dst!r}")
        salt = zlib.crc32(f"{src}|{dst}".encode())
        path, here = [], src
        while here != dst:
            hops, cost = dist[here]
            options = [n for n in self._neighbors[here] if n in dist and dist[n][0] == hops - 1
                       and math.isclose(dist[n][1] + 1 / self.links[(here, n)].bandwidth, cost,
                                        rel_tol=1e-9)]
            nxt = options[salt % len(options)]
            path.append(self.links[(here, nxt)])
            here = nxt
        return tuple(path)

    def _distances_to(self, dst: str) -> dict[str, tuple[int, float]]:
        """(hops, seconds per byte) of the best path from each vertex to ``dst``: fewest hops,
        then the fastest links (so traffic inside a node takes NVLink, not a NIC and a leaf
        switch that is as few hops away). Inner vertices are switches; links are duplex."""
        if dst in self._distances:
            return self._distances[dst]
        switches = set(self.switches)
        dist: dict[str, tuple[int, float]] = {}
        heap = [(0, 0.0, dst)]
        while heap:
            hops, cost, v = heapq.heappop(heap)
            if v in dist:
                continue
            dist[v] = (hops, cost)
            if v != dst and v not in switches:
                continue  # a device other than dst is an endpoint, never a hop
            for n in self._neighbors[v]:
                if n not in dist:
                    heapq.heappush(heap, (hops + 1, cost + 1 / self.links[(n, v)].bandwidth, n))
        self._distances[dst] = dist
        return dist


def _preview(names: list[str], k: int = 6) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")


def _check_count(what: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


def ring(n: int, link: LinkLike) -> Topology:
    """``n`` devices ``gpu0..gpu{n-1}``, each cabled directly to the next (and the last to the
    first): the topology on which ring all-reduce is contention-free."""
    _check_count("ring: n", n, 2)
    topo = Topology(f"ring({n})")
    for i in range(n):
        topo.add_device(f"gpu{i}")
    for i in range(n if n > 2 else 1):
        topo.connect(f"gpu{i}", f"gpu{(i + 1) % n}", link)
    return topo


def fully_connected(n: int, link: LinkLike) -> Topology:
    """``n`` devices with a dedicated cable between every pair (e.g. NVLink meshes of 4 GPUs)."""
    _check_count("fully_connected: n", n, 2)
    topo = Topology(f"fully_connected({n})")
    for i in range(n):
        topo.add_device(f"gpu{i}")
    for i in range(n):
        for j in range(i + 1, n):
            topo.connect(f"gpu{i}", f"gpu{j}", link)
    return topo


def switched(n: int, link: LinkLike) -> Topology:
    """``n`` devices on one non-blocking switch; a message crosses two links (up and down), so its
    latency is twice ``link.latency`` and each device's port is its only shared resource."""
    _check_count("switched: n", n, 2)
    topo = Topology(f"switched({n})")
    topo.add_switch("switch")
    for i in range(n):
        topo.connect(topo.add_device(f"gpu{i}"), "switch", link)
    return topo


def cluster(nodes: int, gpus_per_node: int, intra: LinkLike, inter: LinkLike, *,
            fabric: str = "rail", nodes_per_leaf: int = 1, spines: int = 1,
            oversubscription: float = 1.0) -> Topology:
    """``nodes`` servers of ``gpus_per_node`` GPUs (``n{i}g{j}``) and a network joining them.

    Inside a node every GPU has an ``intra`` link to the node's NVSwitch ``n{i}.nvsw``. Every GPU
    also has its own NIC (an ``inter`` link), as in DGX servers. ``fabric`` says where NICs go:

    - ``"rail"``: GPU ``j`` of every node plugs into rail switch ``rail{j}``; rails join through
      ``spines`` spine switches (same-rail traffic takes one switch hop).
    - ``"fat-tree"``: the NICs of ``nodes_per_leaf`` nodes share a leaf switch; each leaf has one
      uplink to each of ``spines`` spines, with the leaf's NIC bandwidth divided by
      ``oversubscription`` spread over them (1.0 is a full-bisection fat tree).
    """
    _check_count("cluster: nodes", nodes)
    _check_count("cluster: gpus_per_node", gpus_per_node)
    _check_count("cluster: nodes_per_leaf", nodes_per_leaf)
    _check_count("cluster: spines", spines)
    if fabric not in ("rail", "fat-tree"):
        raise ValueError(f"cluster: fabric must be 'rail' or 'fat-tree', got {fabric!r}")
    if not (isinstance(oversubscription, (int, float)) and oversubscription >= 1):
        raise ValueError(f"cluster: oversubscription must be a number >= 1, got {oversubscription!r}")
    if nodes * gpus_per_node < 2:
        raise ValueError("cluster: needs at least 2 GPUs in all, got 1")
    topo = Topology(f"cluster({nodes}x{gpus_per_node}, {fabric})")
    for i in range(nodes):
        nvsw = topo.add_switch(f"n{i}.nvsw") if gpus_per_node > 1 else None
        for j in range(gpus_per_node):
            gpu = topo.add_device(f"n{i}g{j}")
            if nvsw:
                topo.connect(gpu, nvsw, intra, kind=getattr(intra, "kind", None) or "nvlink")
    if nodes == 1:
        return topo
    inter_kind = getattr(inter, "kind", None) or "nic"
    if fabric == "rail":
        edge = [topo.add_switch(f"rail{j}") for j in range(gpus_per_node)]
        edge_of = lambda i, j: edge[j]
        uplink = LinkSpec(inter.bandwidth * nodes / (spines * oversubscription), inter.latency)
    else:
        edge = [topo.add_switch(f"leaf{k}") for k in range(math.ceil(nodes / nodes_per_leaf))]
        edge_of = lambda i, j: edge[i // nodes_per_leaf]
        per_leaf = nodes_per_leaf * gpus_per_node * inter.bandwidth
        uplink = LinkSpec(per_leaf / (spines * oversubscription), inter.latency)
    for i in range(nodes):
        for j in range(gpus_per_node):
            topo.connect(f"n{i}g{j}", edge_of(i, j), inter, kind=inter_kind)
    if len(edge) > 1:
        for s in range(spines):
            spine = topo.add_switch(f"spine{s}")
            for e in edge:
                topo.connect(e, spine, uplink, kind="uplink")
    return topo
