"""Memory traffic counted in the CUDA simulator equals the analytic counts."""

from __future__ import annotations

import numpy as np
import pytest

from mlsys.kernels import traffic
from mlsys.kernels.cuda import elementwise, matmul, transpose
from mlsys.kernels.cuda.runtime import SIMULATOR, launch_1d

pytestmark = pytest.mark.skipif(not SIMULATOR, reason="traffic is counted in the CUDA simulator")

N, TILE = 16, 8


def _matmul_traffic(stage: str, rng: np.random.Generator) -> traffic.Traffic:
    a = rng.standard_normal((N, N), dtype=np.float32)
    b = rng.standard_normal((N, N), dtype=np.float32)
    c = traffic.tracked(np.zeros((N, N), np.float32))
    grid, block = matmul.launch_shape(stage, N, N, TILE)
    with traffic.counting() as log:
        matmul.STAGES[stage](TILE)[grid, block](traffic.tracked(a), traffic.tracked(b), c)
    np.testing.assert_allclose(c.array, a @ b, rtol=1e-4, atol=1e-4)
    return log


def test_naive_matmul_loads_two_k_values_per_output(rng: np.random.Generator) -> None:
    counts = _matmul_traffic("naive", rng).summary()
    assert counts["global_loads"] == 2 * N**3
    assert counts["global_stores"] == N**2
    assert counts["shared_loads"] == counts["shared_stores"] == 0


def test_tiling_divides_global_loads_by_the_tile(rng: np.random.Generator) -> None:
    counts = _matmul_traffic("tiled", rng).summary()
    assert counts["global_loads"] == 2 * N**3 // TILE
    assert counts["shared_stores"] == 2 * N**3 // TILE  # every global load is staged once
    assert counts["shared_loads"] == 2 * N**3
    assert counts["global_bytes"] == 4 * (2 * N**3 // TILE + N**2)


def test_register_blocking_cuts_shared_loads(rng: np.random.Generator) -> None:
    counts = _matmul_traffic("register", rng).summary()
    assert counts["global_loads"] == 2 * N**3 // TILE
    assert counts["shared_loads"] == N**3 + N**3 // matmul.ROWS


@pytest.mark.parametrize("method,store_sectors", [("naive", 32 * 32), ("coalesced", 32 * 32 * 4 // 32)])
def test_coalescing_counts_sectors(method: str, store_sectors: int, rng: np.random.Generator) -> None:
    a = rng.standard_normal((32, 32), dtype=np.float32)
    out = traffic.tracked(np.zeros((32, 32), np.float32))
    with traffic.counting() as log:
        transpose.KERNELS[method][(1, 1), (transpose.TILE, transpose.ROWS)](traffic.tracked(a), out)
    np.testing.assert_array_equal(out.array, a.T)
    # reads go along rows: a warp's 32 float32 loads fill 4 sectors of 32 bytes
    assert log.transactions("load") == 32 * 32 * 4 // 32
    assert log.transactions("store") == store_sectors
    assert log.summary()["global_loads"] == log.summary()["global_stores"] == 32 * 32


def test_tracked_rejects_non_arrays_and_slices() -> None:
    with pytest.raises(TypeError, match="expected a numpy array, got list"):
        traffic.tracked([1.0, 2.0])
    log = traffic.Traffic()
    with pytest.raises(TypeError, match="2 integers"):
        log.record("global", "load", np.zeros((2, 2)), (0, slice(None)))
    with pytest.raises(ValueError, match="'read'"):
        log.transactions("read")


def test_fused_bias_relu_keeps_the_intermediate_out_of_memory(rng: np.random.Generator) -> None:
    n, m = 4, 16
    x = rng.standard_normal(n * m, dtype=np.float32)
    bias = rng.standard_normal(m, dtype=np.float32)
    blocks, threads = launch_1d(n * m, elementwise.BLOCK)
    fused = traffic.tracked(np.zeros(n * m, np.float32))
    with traffic.counting() as one:
        elementwise.bias_relu_kernel[blocks, threads](traffic.tracked(x), traffic.tracked(bias), fused)
    tmp, out = traffic.tracked(np.zeros(n * m, np.float32)), traffic.tracked(np.zeros(n * m, np.float32))
    with traffic.counting() as two:
        wide_bias = traffic.tracked(np.tile(bias, n))  # broadcast on the host, as apply() does
        elementwise.map_kernel("add")[blocks, threads](traffic.tracked(x), wide_bias, tmp)
        elementwise.map_kernel("relu")[blocks, threads](tmp, out)
    np.testing.assert_allclose(fused.array, out.array)
    np.testing.assert_allclose(out.array, np.maximum(x + np.tile(bias, n), 0), rtol=1e-6)
    assert one.summary()["global_loads"] == 2 * n * m and one.summary()["global_stores"] == n * m
    assert two.summary()["global_loads"] == 3 * n * m and two.summary()["global_stores"] == 2 * n * m
