"""CUDA matrix multiplication in four stages (float32, ``C = A @ B``).

1. ``naive``: a thread per output (looping when the grid is smaller than C); every thread reads
   a row of A and a column of B from global memory, 2k loads per output.
2. ``tiled``: a block computes a ``tile x tile`` output tile; each step it stages one tile of A
   and one of B in shared memory (``syncthreads`` between loading and using them), so each global
   element is loaded once per tile instead of once per output: global loads fall by ``tile``.
3. ``register``: the tiled kernel where each thread computes ``ROWS`` outputs down a column,
   keeping their sums in registers (``cuda.local.array``) and reusing each shared-memory value
   of B ``ROWS`` times: shared loads fall from ``2k`` to ``k (1 + 1/ROWS)`` per output.
4. ``blocked``: two-dimensional register blocking (the structure of cuBLAS-like SGEMM kernels,
   e.g. Volkov and Demmel, "Benchmarking GPUs to tune dense linear algebra", SC 2008): 64
   threads compute a ``tile x tile`` tile, each an ``r x r`` block of it (``r = tile / 8``) as
   outer products of ``r`` values of A and ``r`` of B read from shared memory into registers:
   ``2r`` shared loads feed ``r^2`` multiply-adds.

Kernels are built per tile size (a compile-time constant for shared-memory shapes) and cached;
:data:`TILES` holds each stage's tile for a large problem on a GPU. Threads are laid out
x = column, y = row, so consecutive threads of a warp touch consecutive columns (coalesced loads
of B and stores of C). Operands may be strided (a transposed view is read in place).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numba import float32

from .memory import DeviceArray, download, empty, kernel_view, upload
from .runtime import SIMULATOR, cuda, grid_2d

__all__ = ["STAGES", "ROWS", "TILES", "matmul", "naive_kernel", "tiled_kernel", "register_kernel",
           "blocked_kernel", "launch_shape", "matmul_into", "engine_stage", "SMALL"]

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


BLOCKED_SIDE = 8  # threads along each side of a blocked kernel's block (64 in all)


@functools.cache
def blocked_kernel(tile: int) -> Callable:
    """``tile x tile`` output tiles, 64 threads each computing an ``r x r`` block (``r = tile/8``)."""
    if tile % BLOCKED_SIDE:
        raise ValueError(f"blocked_kernel: tile must be a multiple of {BLOCKED_SIDE}, got {tile}")
    r = tile // BLOCKED_SIDE
    depth, threads = r, BLOCKED_SIDE * BLOCKED_SIDE  # columns of A (rows of B) staged per step

    @cuda.jit
    def kernel(a, b, c):
        sa = cuda.shared.array((depth, tile), float32)  # A's tile, transposed: sa[p, row]
        sb = cuda.shared.array((depth, tile), float32)
        acc = cuda.local.array((r, r), float32)
        ra = cuda.local.array(r, float32)
        rb = cuda.local.array(r, float32)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * BLOCKED_SIDE + tx
        row0, col0 = cuda.blockIdx.y * tile, cuda.blockIdx.x * tile
        n, width, m = a.shape[0], a.shape[1], b.shape[1]
        for i in range(r):
            for j in range(r):
                acc[i, j] = float32(0)
        for t in range(0, width, depth):
            for e in range(tid, tile * depth, threads):
                row, p = e // depth, e % depth
                inside = row0 + row < n and t + p < width
                sa[p, row] = a[row0 + row, t + p] if inside else float32(0)
                p, col = e // tile, e % tile  # consecutive threads: consecutive columns of B
                inside = t + p < width and col0 + col < m
                sb[p, col] = b[t + p, col0 + col] if inside else float32(0)
            cuda.syncthreads()
            for p in range(depth):
                for i in range(r):
                    ra[i] = sa[p, ty * r + i]
                for j in range(r):
                    rb[j] = sb[p, tx * r + j]
                for i in range(r):
                    for j in range(r):
                        acc[i, j] += ra[i] * rb[j]
            cuda.syncthreads()
        for i in range(r):
            for j in range(r):
                if row0 + ty * r + i < n and col0 + tx * r + j < m:
                    c[row0 + ty * r + i, col0 + tx * r + j] = acc[i, j]

    return kernel


def launch_shape(stage: str, n: int, m: int, tile: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(grid, block)`` of a stage for an ``n x m`` output."""
    if stage == "blocked":
        return grid_2d(n, m, (tile, tile)), (BLOCKED_SIDE, BLOCKED_SIDE)
    block = (tile, tile // ROWS) if stage == "register" else (tile, tile)
    grid = grid_2d(n, m, (tile, tile)) if stage == "register" else grid_2d(n, m, block)
    return grid, block


STAGES: dict[str, Callable[[int], Callable]] = {
    "naive": lambda tile: naive_kernel, "tiled": tiled_kernel, "register": register_kernel,
    "blocked": blocked_kernel,
}
TILES = {"naive": 16, "tiled": 16, "register": 32, "blocked": 64}  # for large problems on a GPU


def matmul(a: np.ndarray, b: np.ndarray, stage: str = "tiled", tile: int = 16) -> np.ndarray:
    """``a @ b`` for 2-D float32 arrays on the GPU (or the simulator), by the named stage."""
    if stage not in STAGES:
        raise ValueError(f"matmul: unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected 2-D operands (n, k) @ (k, m), got {a.shape} @ {b.shape}")
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise TypeError(f"matmul: the CUDA kernels take float32, got {a.dtype} and {b.dtype}")
    c = empty((a.shape[0], b.shape[1]), np.float32)
    grid, block = launch_shape(stage, a.shape[0], b.shape[1], tile)
    STAGES[stage](tile)[grid, block](kernel_view(upload(a)), kernel_view(upload(b)), kernel_view(c))
    return download(c)


SMALL = 64 * 64  # outputs: a product this small runs the naive kernel (no barriers, few threads)


def engine_stage(n: int, m: int) -> str:
    """The stage the engine runs for an ``n x m`` output."""
    return "naive" if n * m <= SMALL else "blocked"


def _engine_tile(stage: str) -> int:
    return 8 if SIMULATOR else TILES[stage]  # the simulator: small blocks, quick to run


def matmul_into(c: DeviceArray, a: DeviceArray, b: DeviceArray, stage: str | None = None) -> DeviceArray:
    """``c = a @ b`` for float32 device arrays ``(..., n, k) @ (..., k, m)`` (batch dimensions
    broadcast; operands may be strided views, a transpose costs no copy): one launch per matrix
    of the batch, by ``stage`` (default: :func:`engine_stage`)."""
    batch = c.shape[:-2]
    n, m = c.shape[-2:]
    a = a.broadcast_to(batch + a.shape[-2:])
    b = b.broadcast_to(batch + b.shape[-2:])
    stage = engine_stage(n, m) if stage is None else stage
    if stage not in STAGES:
        raise ValueError(f"matmul: unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    tile = _engine_tile(stage)
    if stage == "naive":
        block = (2, 2) if SIMULATOR else (16, 16)
        grid = (1, 1) if SIMULATOR else grid_2d(n, m, block)
    else:
        grid, block = launch_shape(stage, n, m, tile)
    kernel = STAGES[stage](tile)
    for index in np.ndindex(*batch):
        if n and m:
            kernel[grid, block](kernel_view(a[index]), kernel_view(b[index]), kernel_view(c[index]))
    return c
