"""Collective algorithms as data: a :class:`Schedule` is an ordered list of :class:`Step`s.

A step says that in a given round, rank ``src`` sends its current value of chunk ``chunk`` (an
element range of the buffer) to rank ``dst``, which then overwrites (``"copy"``) or reduces into
(``"reduce"``) its own copy of that chunk. Steps of one round run concurrently: every send of a
round carries the value its sender held when the round began, and a receiver applies the steps
that reach it in schedule order. The same schedules run over real processes
(:mod:`mlsys.comm.executor`), in one process (:func:`run_local`), and on a modelled network
(``simulators.collectives``).

Buffers hold ``count`` elements on every rank. Conventions per collective:

* ``all_reduce``: every rank ends with the elementwise reduction of all inputs.
* ``reduce_scatter``: the chunks are the ``world_size`` near-equal blocks of the buffer and rank
  ``r`` ends with the reduction of block ``r`` (the other blocks are scratch).
* ``all_gather``: rank ``r`` starts with its contribution in block ``r``; all end with all blocks.
* ``broadcast`` / ``reduce``: rank ``root`` is the source / destination of the whole buffer.

Textbook costs the tests check (p ranks, n bytes; Thakur, Rabenseifner & Gropp, "Optimization of
collective communication operations in MPICH", IJHPCA 2005; Sanders, Speck & Träff, "Two-tree
algorithms for full bandwidth broadcast, reduction and scan", Parallel Computing 2009):

=====================  ==============  ==================  ======================
all-reduce algorithm   rounds          messages            bytes (all ranks)
=====================  ==============  ==================  ======================
ring                   2(p-1)          2p(p-1)             2(p-1) n
recursive_doubling     log2 p          p log2 p            p log2 p · n
halving_doubling       2 log2 p        2p log2 p           2(p-1) n
binary_tree            2·depth         2(p-1)              2(p-1) n
double_binary_tree     2·depth         4(p-1)              2(p-1) n
direct                 2               2p(p-1)             2(p-1) n
reduce_broadcast       2               2(p-1)              2(p-1) n
=====================  ==============  ==================  ======================

(for powers of two; other world sizes add one round before and after the power-of-two core).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Step", "Schedule", "ALGORITHMS", "COLLECTIVES", "build", "chunk_ranges", "run_local",
           "REDUCE_OPS", "hierarchical_ring"]

OPS = ("copy", "reduce")


@dataclass(frozen=True)
class Step:
    """In ``round``, ``src`` sends chunk ``chunk`` to ``dst``, which copies or reduces it."""

    round: int
    src: int
    dst: int
    chunk: int
    op: str


@dataclass(frozen=True)
class Schedule:
    """A collective algorithm for ``world_size`` ranks on buffers of ``count`` elements."""

    collective: str
    algorithm: str
    world_size: int
    count: int
    chunks: tuple[tuple[int, int], ...]
    steps: tuple[Step, ...]
    root: int = 0

    def __post_init__(self) -> None:
        p = self.world_size
        for start, stop in self.chunks:
            if not 0 <= start <= stop <= self.count:
                raise ValueError(f"schedule {self.algorithm}: chunk ({start}, {stop}) is not a "
                                 f"range inside [0, {self.count}]")
        for s in self.steps:
            if not (0 <= s.src < p and 0 <= s.dst < p) or s.src == s.dst:
                raise ValueError(f"schedule {self.algorithm}: step {s} needs two distinct ranks "
                                 f"in [0, {p})")
            if not 0 <= s.chunk < len(self.chunks) or s.op not in OPS or s.round < 0:
                raise ValueError(f"schedule {self.algorithm}: step {s} needs a chunk in "
                                 f"[0, {len(self.chunks)}), an op in {OPS} and round >= 0")

    def __hash__(self) -> int:  # cheap: executors cache per-rank plans keyed by schedule
        return hash((self.collective, self.algorithm, self.world_size, self.count, self.root,
                     len(self.steps)))

    @property
    def num_rounds(self) -> int:
        return 1 + max((s.round for s in self.steps), default=-1)

    def rounds(self) -> list[list[Step]]:
        """Steps grouped by round (in order); steps of one round run concurrently."""
        grouped: list[list[Step]] = [[] for _ in range(self.num_rounds)]
        for s in self.steps:
            grouped[s.round].append(s)
        return grouped

    def chunk_size(self, chunk: int) -> int:
        start, stop = self.chunks[chunk]
        return stop - start

    def bytes_sent(self, itemsize: int) -> int:
        """Bytes moved by all steps together, for elements of ``itemsize`` bytes."""
        return itemsize * sum(self.chunk_size(s.chunk) for s in self.steps)

    def bytes_sent_by(self, rank: int, itemsize: int) -> int:
        """Bytes rank ``rank`` sends over the whole schedule."""
        return itemsize * sum(self.chunk_size(s.chunk) for s in self.steps if s.src == rank)

    def messages(self) -> dict[tuple[int, int, int], list[Step]]:
        """Steps coalesced into messages: ``(round, src, dst)`` -> that message's steps."""
        out: dict[tuple[int, int, int], list[Step]] = defaultdict(list)
        for s in self.steps:
            out[(s.round, s.src, s.dst)].append(s)
        return dict(out)


# ----------------------------------------------------------------------------------------------
# helpers

def chunk_ranges(count: int, parts: int) -> tuple[tuple[int, int], ...]:
    """``parts`` contiguous near-equal ranges covering ``range(count)`` (earlier ones larger)."""
    base, extra = divmod(count, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + base + (1 if i < extra else 0))
    return tuple(zip(bounds[:-1], bounds[1:]))


def _check(world_size: int, count: int) -> None:
    if not isinstance(world_size, (int, np.integer)) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")


def _check_root(root: int, world_size: int) -> None:
    if not 0 <= root < world_size:
        raise ValueError(f"root must be a rank in [0, {world_size}), got {root!r}")


def _schedule(collective: str, algorithm: str, p: int, count: int,
              chunks: tuple[tuple[int, int], ...], steps: list[Step], root: int = 0) -> Schedule:
    return Schedule(collective, algorithm, p, count, chunks, tuple(steps), root)


def _pow2_floor(p: int) -> int:
    return 1 << (p.bit_length() - 1)


# ----------------------------------------------------------------------------------------------
# ring

def _ring_reduce_scatter_steps(p: int, start_round: int = 0) -> list[Step]:
    """Rank r ends owning block r: in round k it sends block (r-k-1) mod p to r+1."""
    return [Step(start_round + k, r, (r + 1) % p, (r - k - 1) % p, "reduce")
            for k in range(p - 1) for r in range(p)]


def _ring_all_gather_steps(p: int, start_round: int = 0) -> list[Step]:
    """Rank r starts owning block r: in round k it forwards block (r-k) mod p to r+1."""
    return [Step(start_round + k, r, (r + 1) % p, (r - k) % p, "copy")
            for k in range(p - 1) for r in range(p)]


def ring(world_size: int, count: int) -> Schedule:
    """Ring all-reduce: a ring reduce-scatter then a ring all-gather (bandwidth-optimal)."""
    _check(world_size, count)
    p = world_size
    steps = _ring_reduce_scatter_steps(p) + _ring_all_gather_steps(p, p - 1)
    return _schedule("all_reduce", "ring", p, count, chunk_ranges(count, p), steps)


def _one_phase(collective: str, algorithm: str, world_size: int, count: int,
               steps: Callable[[int], list[Step]]) -> Schedule:
    """A reduce-scatter or all-gather alone: one block per rank, the steps of one phase."""
    _check(world_size, count)
    return _schedule(collective, algorithm, world_size, count, chunk_ranges(count, world_size),
                     steps(world_size))


def ring_reduce_scatter(world_size: int, count: int) -> Schedule:
    return _one_phase("reduce_scatter", "ring", world_size, count, _ring_reduce_scatter_steps)


def ring_all_gather(world_size: int, count: int) -> Schedule:
    return _one_phase("all_gather", "ring", world_size, count, _ring_all_gather_steps)


# ----------------------------------------------------------------------------------------------
# direct (every pair talks once per phase) and reduce-then-broadcast

def _direct_reduce_scatter_steps(p: int, start_round: int = 0) -> list[Step]:
    return [Step(start_round, src, dst, dst, "reduce")
            for dst in range(p) for src in range(p) if src != dst]


def _direct_all_gather_steps(p: int, start_round: int = 0) -> list[Step]:
    return [Step(start_round, src, dst, src, "copy")
            for src in range(p) for dst in range(p) if src != dst]


def direct(world_size: int, count: int) -> Schedule:
    """Direct all-reduce: each rank reduces its own block from everyone, then sends it to all."""
    _check(world_size, count)
    p = world_size
    rounds = 1 if p > 1 else 0
    steps = _direct_reduce_scatter_steps(p) + _direct_all_gather_steps(p, rounds)
    return _schedule("all_reduce", "direct", p, count, chunk_ranges(count, p), steps)


def direct_reduce_scatter(world_size: int, count: int) -> Schedule:
    return _one_phase("reduce_scatter", "direct", world_size, count, _direct_reduce_scatter_steps)


def direct_all_gather(world_size: int, count: int) -> Schedule:
    return _one_phase("all_gather", "direct", world_size, count, _direct_all_gather_steps)


def reduce_broadcast(world_size: int, count: int, root: int = 0) -> Schedule:
    """The parameter-server shape: everyone sends to ``root``, which sends the result back."""
    _check(world_size, count)
    _check_root(root, world_size)
    others = [r for r in range(world_size) if r != root]
    steps = ([Step(0, r, root, 0, "reduce") for r in others]
             + [Step(1, root, r, 0, "copy") for r in others])
    return _schedule("all_reduce", "reduce_broadcast", world_size, count, ((0, count),), steps,
                     root)


def direct_reduce(world_size: int, count: int, root: int = 0) -> Schedule:
    _check(world_size, count)
    _check_root(root, world_size)
    steps = [Step(0, r, root, 0, "reduce") for r in range(world_size) if r != root]
    return _schedule("reduce", "direct", world_size, count, ((0, count),), steps, root)


def direct_broadcast(world_size: int, count: int, root: int = 0) -> Schedule:
    _check(world_size, count)
    _check_root(root, world_size)
    steps = [Step(0, root, r, 0, "copy") for r in range(world_size) if r != root]
    return _schedule("broadcast", "direct", world_size, count, ((0, count),), steps, root)


# ----------------------------------------------------------------------------------------------
# recursive doubling and halving-doubling (with the usual fold-in for non-powers of two)

def _fold_in(p: int, q: int, chunks: int) -> list[Step]:
    """Ranks q..p-1 reduce their whole buffer into rank r-q (round 0)."""
    return [Step(0, r, r - q, c, "reduce") for r in range(q, p) for c in range(chunks)]


def _fold_out(p: int, q: int, chunks: int, rnd: int) -> list[Step]:
    """Ranks 0..p-q-1 copy the result back to rank r+q."""
    return [Step(rnd, r - q, r, c, "copy") for r in range(q, p) for c in range(chunks)]


def recursive_doubling(world_size: int, count: int) -> Schedule:
    """Partners at distance 1, 2, 4, ... exchange and reduce whole buffers (latency-optimal)."""
    _check(world_size, count)
    p, q = world_size, _pow2_floor(world_size)
    first = 1 if p > q else 0
    steps = _fold_in(p, q, 1)
    rnd = first
    mask = 1
    while mask < q:
        steps += [Step(rnd, r, r ^ mask, 0, "reduce") for r in range(q)]
        mask, rnd = mask << 1, rnd + 1
    if p > q:
        steps += _fold_out(p, q, 1, rnd)
    return _schedule("all_reduce", "recursive_doubling", p, count, ((0, count),), steps)


def halving_doubling(world_size: int, count: int) -> Schedule:
    """Rabenseifner: reduce-scatter by recursive halving, all-gather by recursive doubling."""
    _check(world_size, count)
    p, q = world_size, _pow2_floor(world_size)
    first = 1 if p > q else 0
    steps = _fold_in(p, q, q)
    rnd = first
    lo = [0] * q  # first chunk of each rank's current block; the block has `size` chunks
    size = q
    mask = q >> 1
    while mask:  # halving: keep the half selected by this bit, send the other half
        half = size // 2
        for r in range(q):
            send_lo = lo[r] + half if r & mask == 0 else lo[r]
            steps += [Step(rnd, r, r ^ mask, c, "reduce") for c in range(send_lo, send_lo + half)]
        lo = [lo[r] if r & mask == 0 else lo[r] + half for r in range(q)]
        size, mask, rnd = half, mask >> 1, rnd + 1
    mask = 1
    while mask < q:  # doubling: send the whole current block, then the blocks merge
        for r in range(q):
            steps += [Step(rnd, r, r ^ mask, c, "copy") for c in range(lo[r], lo[r] + size)]
        lo = [min(lo[r], lo[r ^ mask]) for r in range(q)]
        size, mask, rnd = size * 2, mask << 1, rnd + 1
    if p > q:
        steps += _fold_out(p, q, q, rnd)
    return _schedule("all_reduce", "halving_doubling", p, count, chunk_ranges(count, q), steps)


# ----------------------------------------------------------------------------------------------
# trees

def _inorder_tree(lo: int, hi: int, parent: int | None, out: dict[int, int | None]) -> int | None:
    """A balanced binary tree over ranks lo..hi-1 labelled in order; fills ``out[child]=parent``."""
    if lo >= hi:
        return None
    mid = (lo + hi) // 2
    out[mid] = parent
    _inorder_tree(lo, mid, mid, out)
    _inorder_tree(mid + 1, hi, mid, out)
    return mid


def binary_tree_parents(world_size: int, shift: int = 0) -> dict[int, int | None]:
    """Parent of each rank in the in-order binary tree (the root maps to None), ranks shifted.

    With ``shift=1`` the interior nodes of one tree are (mostly) leaves of the other: the pair
    used by the double binary tree (Sanders, Speck & Träff 2009; NCCL 2.4).
    """
    base: dict[int, int | None] = {}
    _inorder_tree(0, world_size, None, base)
    move = lambda r: (r + shift) % world_size
    return {move(c): (None if par is None else move(par)) for c, par in base.items()}


def _depths(parents: dict[int, int | None]) -> dict[int, int]:
    depth: dict[int, int] = {}

    def d(r: int) -> int:
        if r not in depth:
            par = parents[r]
            depth[r] = 0 if par is None else d(par) + 1
        return depth[r]

    for r in parents:
        d(r)
    return depth


def _tree_steps(parents: dict[int, int | None], chunk: int, up: bool, down: bool,
                start: int = 0) -> list[Step]:
    """Reduce up the tree (deepest level first), then broadcast down it, on one chunk."""
    depth = _depths(parents)
    height = max(depth.values())
    steps: list[Step] = []
    if up:
        for level in range(height, 0, -1):
            steps += [Step(start + height - level, c, par, chunk, "reduce")
                      for c, par in sorted(parents.items()) if par is not None and depth[c] == level]
        start += height
    if down:
        for level in range(1, height + 1):
            steps += [Step(start + level - 1, par, c, chunk, "copy")
                      for c, par in sorted(parents.items()) if par is not None and depth[c] == level]
    return steps


def _rooted_parents(world_size: int, root: int) -> dict[int, int | None]:
    """The in-order tree relabelled so that ``root`` is its root."""
    base = binary_tree_parents(world_size)
    top = next(r for r, par in base.items() if par is None)
    return binary_tree_parents(world_size, shift=(root - top) % world_size)


def binary_tree(world_size: int, count: int) -> Schedule:
    """Reduce to the root of a binary tree, then broadcast back down it."""
    _check(world_size, count)
    parents = binary_tree_parents(world_size)
    return _schedule("all_reduce", "binary_tree", world_size, count, ((0, count),),
                     _tree_steps(parents, 0, True, True))


def double_binary_tree(world_size: int, count: int) -> Schedule:
    """Two complementary trees, each reducing and broadcasting half of the buffer concurrently."""
    _check(world_size, count)
    steps = (_tree_steps(binary_tree_parents(world_size), 0, True, True)
             + _tree_steps(binary_tree_parents(world_size, shift=1), 1, True, True))
    steps.sort(key=lambda s: s.round)
    return _schedule("all_reduce", "double_binary_tree", world_size, count,
                     chunk_ranges(count, 2), steps)


def tree_reduce(world_size: int, count: int, root: int = 0) -> Schedule:
    _check(world_size, count)
    _check_root(root, world_size)
    steps = _tree_steps(_rooted_parents(world_size, root), 0, True, False)
    return _schedule("reduce", "binary_tree", world_size, count, ((0, count),), steps, root)


def tree_broadcast(world_size: int, count: int, root: int = 0) -> Schedule:
    _check(world_size, count)
    _check_root(root, world_size)
    steps = _tree_steps(_rooted_parents(world_size, root), 0, False, True)
    return _schedule("broadcast", "binary_tree", world_size, count, ((0, count),), steps, root)


# ----------------------------------------------------------------------------------------------
# hierarchical (two-level) ring

def hierarchical_ring(nodes: int, gpus_per_node: int, count: int) -> Schedule:
    """All-reduce for ranks ``node * gpus_per_node + local``: ring reduce-scatter inside each
    node, ``gpus_per_node`` concurrent rings across nodes (one per local rank, each on its block),
    ring all-gather inside each node (the "2D ring"; e.g. Jia et al., arXiv:1807.11205, 2018).
    Chunk ``j * nodes + i`` is piece ``i`` of block ``j``. It crosses the slow inter-node links in
    ``2(nodes-1)`` rounds instead of the flat ring's ``2(nodes*gpus_per_node-1)``; being a
    :class:`Schedule`, it runs on real processes (:func:`mlsys.comm.executor.execute`) as well as
    on a modelled cluster (``simulators.collectives``)."""
    for name, v in (("nodes", nodes), ("gpus_per_node", gpus_per_node)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"hierarchical_ring: {name} must be a positive integer, got {v!r}")
    k, m = gpus_per_node, nodes
    rank = lambda node, local: node * k + local
    block = lambda j: [j * m + i for i in range(m)]
    steps: list[Step] = []
    for t in range(k - 1):  # intra-node reduce-scatter: local l ends owning block l
        steps += [Step(t, rank(n, l), rank(n, (l + 1) % k), c, "reduce")
                  for n in range(m) for l in range(k) for c in block((l - t - 1) % k)]
    base = k - 1
    for t in range(m - 1):  # inter-node ring reduce-scatter on each local rank's block
        steps += [Step(base + t, rank(n, j), rank((n + 1) % m, j), j * m + (n - t - 1) % m,
                       "reduce") for j in range(k) for n in range(m)]
    base += m - 1
    for t in range(m - 1):  # inter-node ring all-gather
        steps += [Step(base + t, rank(n, j), rank((n + 1) % m, j), j * m + (n - t) % m, "copy")
                  for j in range(k) for n in range(m)]
    base += m - 1
    for t in range(k - 1):  # intra-node all-gather of the blocks
        steps += [Step(base + t, rank(n, l), rank(n, (l + 1) % k), c, "copy")
                  for n in range(m) for l in range(k) for c in block((l - t) % k)]
    return Schedule("all_reduce", "hierarchical_ring", m * k, count, chunk_ranges(count, m * k),
                    tuple(steps))


# ----------------------------------------------------------------------------------------------
# registries

Builder = Callable[..., Schedule]

#: all-reduce algorithms by name: ``ALGORITHMS[name](world_size, count) -> Schedule``.
ALGORITHMS: dict[str, Builder] = {
    "ring": ring,
    "binary_tree": binary_tree,
    "double_binary_tree": double_binary_tree,
    "recursive_doubling": recursive_doubling,
    "halving_doubling": halving_doubling,
    "direct": direct,
    "reduce_broadcast": reduce_broadcast,
}

#: every collective's algorithms: ``COLLECTIVES[collective][name]``.
COLLECTIVES: dict[str, dict[str, Builder]] = {
    "all_reduce": ALGORITHMS,
    "reduce_scatter": {"ring": ring_reduce_scatter, "direct": direct_reduce_scatter},
    "all_gather": {"ring": ring_all_gather, "direct": direct_all_gather},
    "broadcast": {"binary_tree": tree_broadcast, "direct": direct_broadcast},
    "reduce": {"binary_tree": tree_reduce, "direct": direct_reduce},
}


def build(collective: str, algorithm: str, world_size: int, count: int, **kwargs: Any) -> Schedule:
    """The schedule of ``algorithm`` for ``collective``, with clear errors for unknown names."""
    if collective not in COLLECTIVES:
        raise ValueError(f"unknown collective {collective!r}; expected one of {sorted(COLLECTIVES)}")
    table = COLLECTIVES[collective]
    if algorithm not in table:
        raise ValueError(f"unknown {collective} algorithm {algorithm!r}; expected one of "
                         f"{sorted(table)}")
    return table[algorithm](world_size, count, **kwargs)


# ----------------------------------------------------------------------------------------------
# reference execution in one process

REDUCE_OPS: dict[str, Callable[[np.ndarray, np.ndarray], None]] = {
    "sum": lambda acc, x: np.add(acc, x, out=acc),
    "max": lambda acc, x: np.maximum(acc, x, out=acc),
    "min": lambda acc, x: np.minimum(acc, x, out=acc),
}


def run_local(schedule: Schedule, buffers: Sequence[np.ndarray], op: str = "sum") -> list[np.ndarray]:
    """Execute ``schedule`` on one buffer per rank in this process; returns the new buffers."""
    if len(buffers) != schedule.world_size:
        raise ValueError(f"run_local: {schedule.algorithm} needs {schedule.world_size} buffers, "
                         f"got {len(buffers)}")
    if op not in REDUCE_OPS:
        raise ValueError(f"unknown reduction {op!r}; expected one of {sorted(REDUCE_OPS)}")
    reduce = REDUCE_OPS[op]
    out = [np.array(b, copy=True).reshape(-1) for b in buffers]
    for rank, b in enumerate(out):
        if b.size != schedule.count:
            raise ValueError(f"run_local: rank {rank} buffer has {b.size} elements, expected "
                             f"{schedule.count}")
    for steps in schedule.rounds():
        sent = [out[s.src][slice(*schedule.chunks[s.chunk])].copy() for s in steps]
        for s, data in zip(steps, sent):
            target = out[s.dst][slice(*schedule.chunks[s.chunk])]
            if s.op == "copy":
                target[...] = data
            else:
                reduce(target, data)
    return out
