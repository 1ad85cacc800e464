"""Checks every rank runs, shared by the shared-memory and MPI transport tests.

Each rank builds the same random inputs for every rank from a common seed, so it knows the
expected result of each collective without talking to anyone.
"""

from __future__ import annotations

import numpy as np

from mlsys import Tensor
from mlsys.comm import ALGORITHMS, COLLECTIVES
from mlsys.comm.launcher import mpiexec_path
from mlsys.comm.schedules import chunk_ranges

# counts not divisible by any world size; the largest streams through several transport slots
COUNTS = (1, 5, 97, 4096 + 3, 70_001)
# the compiled all-reduce: empty, one sync (small), two syncs per piece, several pieces
NATIVE_COUNTS = (0, 3, 4096 + 3, 300_007)


def have_mpi() -> bool:
    try:
        import mpi4py  # noqa: F401

        return bool(mpiexec_path())
    except (ImportError, FileNotFoundError):
        return False


def inputs(world: int, count: int, dtype=np.float64, seed: int = 0) -> list[np.ndarray]:  # noqa: ANN001
    rng = np.random.default_rng(seed + 7 * count + world)
    return [rng.standard_normal(count).astype(dtype) for _ in range(world)]


def check_collectives(group) -> str:  # noqa: ANN001
    p, r = group.world_size, group.rank
    for count in COUNTS:
        xs = inputs(p, count)
        total = np.sum(xs, axis=0)
        for algorithm in ALGORITHMS:
            got = group.all_reduce(xs[r].copy(), algorithm=algorithm)
            np.testing.assert_allclose(got, total, rtol=1e-10, atol=1e-10, err_msg=algorithm)
        for op, ref in (("max", np.max), ("min", np.min), ("mean", np.mean)):
            np.testing.assert_allclose(group.all_reduce(xs[r].copy(), op=op), ref(xs, axis=0))
        for algorithm in COLLECTIVES["reduce_scatter"]:
            start, stop = chunk_ranges(count, p)[r]
            np.testing.assert_allclose(group.reduce_scatter(xs[r], algorithm=algorithm),
                                       total[start:stop], rtol=1e-10, atol=1e-10)
        for algorithm in COLLECTIVES["all_gather"]:
            np.testing.assert_array_equal(group.all_gather(xs[r], algorithm=algorithm), xs)
        for root in {0, p - 1}:
            for algorithm in COLLECTIVES["broadcast"]:
                got = group.broadcast(xs[r].copy(), root=root, algorithm=algorithm)
                np.testing.assert_array_equal(got, xs[root])
            for algorithm in COLLECTIVES["reduce"]:
                got = group.reduce(xs[r].copy(), root=root, algorithm=algorithm)
                if r == root:
                    np.testing.assert_allclose(got, total, rtol=1e-10, atol=1e-10)
    check_native_all_reduce(group)
    # all-to-all, Tensors, integer dtypes, 2-d shapes, point to point
    rows = np.arange(p * 3).reshape(p, 3) + 100 * r
    expected = np.stack([np.arange(p * 3).reshape(p, 3)[r] + 100 * i for i in range(p)])
    np.testing.assert_array_equal(group.all_to_all(rows), expected)
    t = Tensor(np.full((2, 3), float(r + 1), np.float32))
    assert group.all_reduce(t) is t and np.all(t.data == p * (p + 1) / 2)
    ints = group.all_reduce(np.full(4, r, np.int64), op="max")
    assert ints.dtype == np.int64 and np.all(ints == p - 1)
    if p > 1:
        if r == 0:
            group.send(np.arange(6.0).reshape(2, 3), 1)
            assert np.array_equal(group.recv(1), [2])
        elif r == 1:
            np.testing.assert_array_equal(group.recv(0), np.arange(6.0).reshape(2, 3))
            group.send(np.array([2]), 0)
    group.barrier()
    return "ok"


def check_native_all_reduce(group) -> None:  # noqa: ANN001
    """``algorithm="auto"``: every dtype, op and size path; every rank gets bitwise the same."""
    p, r = group.world_size, group.rank
    for dtype in (np.float32, np.float64, np.int32, np.int64):
        for count in NATIVE_COUNTS:
            xs = [(x * 100).astype(dtype) for x in inputs(p, count, seed=3)]
            for op, ref in (("sum", np.sum), ("max", np.max), ("min", np.min)):
                got = group.all_reduce(xs[r].copy(), op=op)
                assert got.dtype == dtype
                np.testing.assert_allclose(got, ref(xs, axis=0).astype(dtype), rtol=1e-5,
                                           atol=1e-3 if dtype == np.float32 else 1e-9,
                                           err_msg=f"{dtype.__name__} {count} {op}")
                same = group.all_gather(got)
                assert all(np.array_equal(same[0], s) for s in same), "ranks differ"
    mean = group.all_reduce(np.full(6, float(r)), op="mean")
    np.testing.assert_allclose(mean, (p - 1) / 2)
    nan = np.zeros(3)
    nan[1] = np.nan if r == p - 1 else 0.0
    assert np.isnan(group.all_reduce(nan, op="max")[1]) and np.isnan(group.all_reduce(nan, op="min")[1])


def mismatched_shapes(group) -> None:  # noqa: ANN001
    group.all_reduce(np.zeros(10 + group.rank))


def mismatched_dtypes(group) -> None:  # noqa: ANN001
    group.all_reduce(np.zeros(8, np.float32 if group.rank else np.float64), algorithm="ring")


def smoke(group) -> str:  # noqa: ANN001
    total = group.all_reduce(np.full(3, group.rank + 1.0))
    assert np.all(total == group.world_size * (group.world_size + 1) / 2)
    return "ok"


CHECKS = {"collectives": check_collectives, "smoke": smoke, "shapes": mismatched_shapes,
          "dtypes": mismatched_dtypes}
