"""Matrix transpose, naive and coalesced (after Mark Harris, "An Efficient Matrix Transpose in
CUDA C/C++", NVIDIA developer blog, 2013).

A block of ``TILE x ROWS`` threads moves a ``TILE x TILE`` tile, each thread ``TILE / ROWS``
elements. The naive kernel reads rows (consecutive threads, consecutive addresses: coalesced) but
writes columns (consecutive threads ``4 * rows`` bytes apart: one memory transaction each). The
coalesced kernel reads a tile into shared memory, then writes it out transposed along rows, so
both global reads and writes are coalesced; the tile is padded to ``TILE + 1`` columns so that
the column reads from shared memory fall in different banks.
"""

from __future__ import annotations

import numpy as np
from numba import float32

from .memory import download, empty, kernel_view, upload
from .runtime import cuda, grid_2d

__all__ = ["TILE", "ROWS", "naive_kernel", "coalesced_kernel", "transpose"]

TILE = 32
ROWS = 8


@cuda.jit
def naive_kernel(a, out):
    x = cuda.blockIdx.x * TILE + cuda.threadIdx.x
    y0 = cuda.blockIdx.y * TILE + cuda.threadIdx.y
    for r in range(0, TILE, ROWS):
        if y0 + r < a.shape[0] and x < a.shape[1]:
            out[x, y0 + r] = a[y0 + r, x]


@cuda.jit
def coalesced_kernel(a, out):
    tile = cuda.shared.array((TILE, TILE + 1), float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    x, y0 = cuda.blockIdx.x * TILE + tx, cuda.blockIdx.y * TILE + ty
    for r in range(0, TILE, ROWS):
        if y0 + r < a.shape[0] and x < a.shape[1]:
            tile[ty + r, tx] = a[y0 + r, x]
    cuda.syncthreads()
    x, y0 = cuda.blockIdx.y * TILE + tx, cuda.blockIdx.x * TILE + ty
    for r in range(0, TILE, ROWS):
        if y0 + r < a.shape[1] and x < a.shape[0]:
            out[y0 + r, x] = tile[tx, ty + r]


KERNELS = {"naive": naive_kernel, "coalesced": coalesced_kernel}


def transpose(a: np.ndarray, method: str = "coalesced") -> np.ndarray:
    """``a.T`` of a 2-D float32 array, by the ``"naive"`` or ``"coalesced"`` kernel."""
    if method not in KERNELS:
        raise ValueError(f"transpose: method must be one of {', '.join(KERNELS)}, got {method!r}")
    if a.ndim != 2 or a.dtype != np.float32:
        raise ValueError(f"transpose: expected a 2-D float32 array, got {a.dtype}{list(a.shape)}")
    out = empty((a.shape[1], a.shape[0]), np.float32)
    KERNELS[method][grid_2d(a.shape[0], a.shape[1], (TILE, TILE)), (TILE, ROWS)](
        kernel_view(upload(a)), kernel_view(out))
    return download(out)
