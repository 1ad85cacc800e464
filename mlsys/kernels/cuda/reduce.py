"""CUDA reductions and row softmax.

* ``sum_tree``: each thread sums a grid-strided slice in a register, the block combines those
  sums in shared memory by halving (``BLOCK/2, BLOCK/4, ... 1`` active threads, a ``syncthreads``
  per level), and one atomic add per block finishes the total.
* ``sum_warp``: the same, but the last 32 values combine with warp shuffles
  (``shfl_down_sync``): lanes exchange registers directly, with no shared memory and no
  ``syncthreads`` — a warp executes in lockstep. Each warp adds its sum atomically.
* ``softmax_rows``: one block per row; the block finds the row's max, then the sum of
  ``exp(x - max)`` (both by shared-memory tree reductions), then writes ``exp(x - max) / sum``:
  subtracting the max keeps ``exp`` from overflowing.
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32

from .loops import fill
from .memory import download, empty, kernel_view, upload
from .runtime import WARP, cuda, launch_1d

__all__ = ["BLOCK", "sum_tree", "sum_warp", "softmax_rows", "total", "softmax"]

BLOCK = 128  # threads per block of the reductions (a power of two)
ROW_BLOCK = 32  # threads per row of the softmax (a power of two)


@cuda.jit(device=True)
def _tree(buf, tid, size, take_max):
    """Combine ``buf[0:size]`` into ``buf[0]`` by halving; every thread of the block calls it."""
    half = size // 2
    while half > 0:
        if tid < half:
            if take_max:
                buf[tid] = max(buf[tid], buf[tid + half])
            else:
                buf[tid] += buf[tid + half]
        cuda.syncthreads()
        half //= 2


@cuda.jit
def sum_tree(x, out):
    buf = cuda.shared.array(BLOCK, float32)
    tid = cuda.threadIdx.x
    acc = float32(0)
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        acc += x[i]
    buf[tid] = acc
    cuda.syncthreads()
    _tree(buf, tid, cuda.blockDim.x, False)
    if tid == 0:
        cuda.atomic.add(out, 0, buf[0])


@cuda.jit
def sum_warp(x, out):
    acc = float32(0)
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        acc += x[i]
    offset = WARP // 2
    while offset > 0:
        acc += cuda.shfl_down_sync(0xFFFFFFFF, acc, offset)
        offset //= 2
    if cuda.threadIdx.x % WARP == 0:
        cuda.atomic.add(out, 0, acc)


@cuda.jit
def softmax_rows(x, out):
    buf = cuda.shared.array(ROW_BLOCK, float32)
    row, tid = cuda.blockIdx.x, cuda.threadIdx.x
    n = x.shape[1]
    peak = -math.inf
    for j in range(tid, n, ROW_BLOCK):
        peak = max(peak, x[row, j])
    buf[tid] = peak
    cuda.syncthreads()
    _tree(buf, tid, ROW_BLOCK, True)
    peak = buf[0]
    cuda.syncthreads()
    acc = float32(0)
    for j in range(tid, n, ROW_BLOCK):
        e = math.exp(x[row, j] - peak)
        out[row, j] = e
        acc += e
    buf[tid] = acc
    cuda.syncthreads()
    _tree(buf, tid, ROW_BLOCK, False)
    scale = float32(1) / buf[0]
    for j in range(tid, n, ROW_BLOCK):
        out[row, j] *= scale


def _float32(x: np.ndarray, name: str) -> None:
    if x.dtype != np.float32:
        raise TypeError(f"{name}: the CUDA kernels take float32, got {x.dtype}")


def total(x: np.ndarray, method: str = "tree") -> np.float32:
    """Sum of all elements of a float32 array, by the ``"tree"`` or ``"warp"`` kernel."""
    kernels = {"tree": sum_tree, "warp": sum_warp}
    if method not in kernels:
        raise ValueError(f"total: method must be one of {', '.join(kernels)}, got {method!r}")
    _float32(x, "total")
    out = fill(empty((1,), np.float32), 0)
    blocks, threads = launch_1d(x.size, BLOCK)
    kernels[method][min(blocks, 64), threads](kernel_view(upload(x.reshape(-1))), kernel_view(out))
    return download(out)[0]


def softmax(x: np.ndarray) -> np.ndarray:
    """Row softmax of a 2-D float32 array (one block per row)."""
    _float32(x, "softmax")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"softmax: expected a 2-D array with non-empty rows, got shape {x.shape}")
    out = empty(x.shape, np.float32)
    softmax_rows[x.shape[0], ROW_BLOCK](kernel_view(upload(x)), kernel_view(out))
    return download(out)
