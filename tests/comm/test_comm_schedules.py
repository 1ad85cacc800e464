"""Every schedule computes its collective, and costs what the textbooks say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlsys.comm.schedules import (
    ALGORITHMS,
    COLLECTIVES,
    Schedule,
    Step,
    binary_tree_parents,
    build,
    chunk_ranges,
    run_local,
)

WORLDS = range(1, 10)
COUNTS = (1, 2, 7, 16, 97)


def expected(collective: str, xs: list[np.ndarray], root: int, rank: int) -> tuple[slice, np.ndarray]:
    """The part of rank ``rank``'s buffer the collective defines, and its value."""
    p, n = len(xs), xs[0].size
    full = slice(0, n)
    if collective == "all_reduce":
        return full, np.sum(xs, axis=0)
    if collective == "reduce":
        return (full, np.sum(xs, axis=0)) if rank == root else (slice(0, 0), xs[rank][:0])
    if collective == "broadcast":
        return full, xs[root]
    block = slice(*chunk_ranges(n, p)[rank])
    if collective == "reduce_scatter":
        return block, np.sum(xs, axis=0)[block]
    gathered = np.concatenate([xs[r][slice(*chunk_ranges(n, p)[r])] for r in range(p)])
    return full, gathered  # all_gather


@pytest.mark.parametrize("collective,algorithm",
                         [(c, a) for c, table in COLLECTIVES.items() for a in table])
def test_every_schedule_computes_its_collective(collective: str, algorithm: str,
                                                rng: np.random.Generator) -> None:
    for p in WORLDS:
        for n in COUNTS:
            roots = [0, p - 1] if collective in ("broadcast", "reduce") else [0]
            for root in roots:
                kw = {"root": root} if collective in ("broadcast", "reduce") else {}
                schedule = build(collective, algorithm, p, n, **kw)
                xs = [rng.standard_normal(n) for _ in range(p)]
                out = run_local(schedule, xs)
                for rank in range(p):
                    part, value = expected(collective, xs, root, rank)
                    np.testing.assert_allclose(out[rank][part], value, rtol=1e-12, atol=1e-12,
                                               err_msg=f"{algorithm} p={p} n={n} rank={rank}")


def test_max_and_min_reductions(rng: np.random.Generator) -> None:
    xs = [rng.standard_normal(11) for _ in range(5)]
    for name, builder in ALGORITHMS.items():
        schedule = builder(5, 11)
        assert all(np.array_equal(o, np.max(xs, 0)) for o in run_local(schedule, xs, "max")), name
        assert all(np.array_equal(o, np.min(xs, 0)) for o in run_local(schedule, xs, "min")), name


def tree_depth(p: int) -> int:
    parents = binary_tree_parents(p)
    depth = lambda r: 0 if parents[r] is None else 1 + depth(parents[r])
    return max(depth(r) for r in range(p))


# (rounds, messages, bytes of all ranks) for p a power of two, n bytes (Thakur et al. 2005)
TEXTBOOK = {
    "ring": lambda p, n: (2 * (p - 1), 2 * p * (p - 1), 2 * (p - 1) * n),
    "recursive_doubling": lambda p, n: (math.log2(p), p * math.log2(p), p * math.log2(p) * n),
    "halving_doubling": lambda p, n: (2 * math.log2(p), 2 * p * math.log2(p), 2 * (p - 1) * n),
    "binary_tree": lambda p, n: (2 * tree_depth(p), 2 * (p - 1), 2 * (p - 1) * n),
    "double_binary_tree": lambda p, n: (2 * tree_depth(p), 4 * (p - 1), 2 * (p - 1) * n),
    "direct": lambda p, n: (2, 2 * p * (p - 1), 2 * (p - 1) * n),
    "reduce_broadcast": lambda p, n: (2, 2 * (p - 1), 2 * (p - 1) * n),
}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_rounds_messages_and_bytes_match_the_textbook(algorithm: str, p: int) -> None:
    n = 64 * p  # elements, divisible by p and by 2
    schedule = ALGORITHMS[algorithm](p, n)
    rounds, messages, nbytes = TEXTBOOK[algorithm](p, 4 * n)
    assert schedule.num_rounds == rounds
    assert len(schedule.messages()) == messages
    assert schedule.bytes_sent(4) == nbytes


@pytest.mark.parametrize("p", [2, 4, 8])
def test_bandwidth_optimal_algorithms_send_2_p_minus_1_over_p_per_rank(p: int) -> None:
    n = 8 * p
    for name in ("ring", "halving_doubling", "direct"):
        schedule = ALGORITHMS[name](p, n)
        assert all(schedule.bytes_sent_by(r, 1) == 2 * (p - 1) * n // p for r in range(p)), name


def test_non_powers_of_two_add_one_round_before_and_after() -> None:
    for name in ("recursive_doubling", "halving_doubling"):
        assert ALGORITHMS[name](6, 60).num_rounds == ALGORITHMS[name](4, 60).num_rounds + 2


def test_double_binary_tree_interior_nodes_are_leaves_of_the_other_tree() -> None:
    p = 8
    a, b = binary_tree_parents(p), binary_tree_parents(p, shift=1)
    interior = lambda t: {par for par in t.values() if par is not None}
    assert len(interior(a) & interior(b)) <= 1  # Sanders et al.: at most one rank is in both


def test_chunks_cover_the_buffer_when_count_is_not_divisible() -> None:
    assert chunk_ranges(10, 4) == ((0, 3), (3, 6), (6, 8), (8, 10))
    assert chunk_ranges(2, 4) == ((0, 1), (1, 2), (2, 2), (2, 2))
    schedule = ALGORITHMS["ring"](4, 10)
    assert schedule.bytes_sent(1) == sum(schedule.chunk_size(s.chunk) for s in schedule.steps)


def test_rounds_group_steps_in_order() -> None:
    schedule = ALGORITHMS["ring"](3, 9)
    rounds = schedule.rounds()
    assert len(rounds) == 4 and all(len(r) == 3 for r in rounds)
    assert all(s.round == i for i, r in enumerate(rounds) for s in r)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="world_size must be a positive integer, got 0"):
        ALGORITHMS["ring"](0, 8)
    with pytest.raises(ValueError, match="count must be a non-negative integer, got -1"):
        ALGORITHMS["ring"](2, -1)
    with pytest.raises(ValueError, match="unknown all_reduce algorithm 'rng'"):
        build("all_reduce", "rng", 2, 8)
    with pytest.raises(ValueError, match="unknown collective 'allreduce'"):
        build("allreduce", "ring", 2, 8)
    with pytest.raises(ValueError, match="root must be a rank in \\[0, 3\\), got 3"):
        build("broadcast", "direct", 3, 8, root=3)
    with pytest.raises(ValueError, match="two distinct ranks"):
        Schedule("all_reduce", "bad", 2, 4, ((0, 4),), (Step(0, 0, 0, 0, "copy"),))
    with pytest.raises(ValueError, match="op in"):
        Schedule("all_reduce", "bad", 2, 4, ((0, 4),), (Step(0, 0, 1, 0, "add"),))
    with pytest.raises(ValueError, match="needs 3 buffers, got 2"):
        run_local(ALGORITHMS["ring"](3, 4), [np.zeros(4)] * 2)
