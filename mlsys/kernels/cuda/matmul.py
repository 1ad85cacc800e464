"""CUDA matrix multiplication in three stages (float32, ``C = A @ B``).

1. ``naive``: a thread per output (looping when the grid is smaller than C); every thread reads
   a row of A and a column of B from global memory, 2k loads per output.
2. ``tiled``: a block computes a ``tile x tile`` output tile; each step it stages one tile of A
   and one of B in shared memory (``syncthreads`` between loading and using them), so each global
   element is loaded once per tile instead of once per output: global loads fall by ``tile``.
3. ``register``: the tiled kernel where each thread computes ``ROWS`` outputs down a column,
   keeping their sums in registers (``cuda.local.array``) and reusing each shared-memory value
   of B ``ROWS`` times: shared loads fall from ``2k`` to ``k (1 + 1/ROWS)`` per output.

Kernels are built per tile size (a compile-time constant for shared-memory shapes) and cached.
Threads are laid out x = column, y = row, so consecutive threads of a warp touch consecutive
columns (coalesced loads of B and stores of C).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numba import float32

from .memory import DeviceArray, kernel_view
from .runtime import SIMULATOR, cuda, grid_2d, to_device

__all__ = ["STAGES", "ROWS", "matmul", "naive_kernel", "tiled_kernel", "register_kernel",
           "launch_shape", "matmul_into", "engine_stage", "SMALL"]

ROWS = 4  # outputs per thread in the register-blocked kernel


@cuda.jit
def naive_kernel(a, b, c):
    col0, row0 = cuda.grid(2)
    cols, rows = cuda.gridsize(2)
    for row in range(row0, c.shape[0], rows):  # grid-stride: any grid covers every output
        for col in range(col0, c.shape[1], cols):
            acc = float32(0)
            for p in range(a.shape[1]):
                acc += a[row, p] * b[p, col]
            c[row, col] = acc


@functools.cache
def tiled_kernel(tile: int) -> Callable:
    """Shared-memory tiled matmul with ``tile x tile`` threads per block."""

    @cuda.jit
    def kernel(a, b, c):
        sa = cuda.shared.array((tile, tile), float32)
        sb = cuda.shared.array((tile, tile), float32)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row, col = cuda.blockIdx.y * tile + ty, cuda.blockIdx.x * tile + tx
        n, depth, m = a.shape[0], a.shape[1], b.shape[1]
        acc = float32(0)
        for t in range((depth + tile - 1) // tile):
            p = t * tile + tx
            sa[ty, tx] = a[row, p] if row < n and p < depth else float32(0)
            p = t * tile + ty
            sb[ty, tx] = b[p, col] if p < depth and col < m else float32(0)
            cuda.syncthreads()
            for q in range(tile):
                acc += sa[ty, q] * sb[q, tx]
            cuda.syncthreads()
        if row < n and col < m:
            c[row, col] = acc

    return kernel


@functools.cache
def register_kernel(tile: int) -> Callable:
    """Tiled matmul with ``tile x (tile // ROWS)`` threads, each computing ``ROWS`` outputs."""
    if tile % ROWS:
        raise ValueError(f"register_kernel: tile must be a multiple of {ROWS}, got {tile}")

    @cuda.jit
    def kernel(a, b, c):
        sa = cuda.shared.array((tile, tile), float32)
        sb = cuda.shared.array((tile, tile), float32)
        acc = cuda.local.array(ROWS, float32)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row0, col = cuda.blockIdx.y * tile + ty * ROWS, cuda.blockIdx.x * tile + tx
        n, depth, m = a.shape[0], a.shape[1], b.shape[1]
        for r in range(ROWS):
            acc[r] = float32(0)
        for t in range((depth + tile - 1) // tile):
            for r in range(ROWS):
                rr = ty * ROWS + r
                p = t * tile + tx
                sa[rr, tx] = a[row0 + r, p] if row0 + r < n and p < depth else float32(0)
                p = t * tile + rr
                sb[rr, tx] = b[p, col] if p < depth and col < m else float32(0)
            cuda.syncthreads()
            for q in range(tile):
                bq = sb[q, tx]
                for r in range(ROWS):
                    acc[r] += sa[ty * ROWS + r, q] * bq
            cuda.syncthreads()
        for r in range(ROWS):
            if row0 + r < n and col < m:
                c[row0 + r, col] = acc[r]

    return kernel


def launch_shape(stage: str, n: int, m: int, tile: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(grid, block)`` of a stage for an ``n x m`` output."""
    block = (tile, tile // ROWS) if stage == "register" else (tile, tile)
    grid = grid_2d(n, m, (tile, tile)) if stage == "register" else grid_2d(n, m, block)
    return grid, block


STAGES: dict[str, Callable[[int], Callable]] = {
    "naive": lambda tile: naive_kernel, "tiled": tiled_kernel, "register": register_kernel,
}


def matmul(a: np.ndarray, b: np.ndarray, stage: str = "tiled", tile: int = 16) -> np.ndarray:
    """``a @ b`` for 2-D float32 arrays on the GPU (or the simulator), by the named stage."""
    if stage not in STAGES:
        raise ValueError(f"matmul: unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected 2-D operands (n, k) @ (k, m), got {a.shape} @ {b.shape}")
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise TypeError(f"matmul: the CUDA kernels take float32, got {a.dtype} and {b.dtype}")
    da, db = to_device(a, b)
    dc = cuda.device_array((a.shape[0], b.shape[1]), np.float32)
    grid, block = launch_shape(stage, a.shape[0], b.shape[1], tile)
    STAGES[stage](tile)[grid, block](da, db, dc)
    return dc.copy_to_host()


SMALL = 64 * 64  # outputs: a product this small runs the naive kernel (no barriers, few threads)
ENGINE_TILE = 8 if SIMULATOR else 16


def engine_stage(n: int, m: int) -> str:
    """The stage the engine runs for an ``n x m`` output."""
    return "naive" if n * m <= SMALL else "register"


def matmul_into(c: DeviceArray, a: DeviceArray, b: DeviceArray) -> DeviceArray:
    """``c = a @ b`` for float32 device arrays ``(..., n, k) @ (..., k, m)`` (batch dimensions
    broadcast; operands may be strided views, a transpose costs no copy): one launch per matrix
    of the batch, by :func:`engine_stage`."""
    batch = c.shape[:-2]
    n, m = c.shape[-2:]
    a = a.broadcast_to(batch + a.shape[-2:])
    b = b.broadcast_to(batch + b.shape[-2:])
    stage = engine_stage(n, m)
    if stage == "naive":
        block = (8, 4) if SIMULATOR else (16, 16)
        grid = (1, 1) if SIMULATOR else grid_2d(n, m, block)
    else:
        grid, block = launch_shape(stage, n, m, ENGINE_TILE)
    kernel = STAGES[stage](ENGINE_TILE)
    for index in np.ndindex(*batch):
        if n and m:
            kernel[grid, block](kernel_view(a[index]), kernel_view(b[index]), kernel_view(c[index]))
    return c
