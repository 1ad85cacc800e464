"""Matrix multiplication on the CPU in five stages a reader can compare.

Each stage changes one thing and keeps the result (``C = A @ B`` for 2-D float arrays):

1. ``naive``: the textbook i-j-k loop; the inner loop walks a *column* of B, one cache line per
   element, so it is bound by memory latency.
2. ``reordered``: i-k-j; the inner loop now walks rows of B and C contiguously and vectorizes.
3. ``tiled``: i-k-j over blocks of rows, with row *views* hoisted out of the inner loop so the
   compiler sees two plain 1-D arrays (a block of C rows stays in L1 while B streams through).
4. ``parallel``: the tiled kernel with its row blocks spread over cores (``prange``).
5. ``packed``: B is packed once as B^T, and a 4x2 register-blocked micro-kernel computes eight
   dot products at a time: six loads feed eight fused multiply-adds per vector step, so the
   kernel is bound by the FMA units instead of loads and stores (the idea behind GotoBLAS/BLIS
   micro-kernels: Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
   ACM TOMS 2008).

All kernels write into a caller-provided ``out`` and are compiled with ``cache=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit, prange

from .forksafe import usable

__all__ = ["STAGES", "matmul", "naive", "reordered", "tiled", "parallel", "packed"]

ROW_BLOCK = 64  # rows of C per block in the tiled kernels
COL_BLOCK = 256  # columns of C per block: a 1 KiB float32 row segment stays in L1
DEPTH_BLOCK = 128  # rows of B per block: a 128 KiB float32 tile of B stays in L2


@njit(cache=True, fastmath=True)
def _naive(a, b, out):
    n, k = a.shape
    m = b.shape[1]
    for i in range(n):
        for j in range(m):
            s = out.dtype.type(0)
            for p in range(k):
                s += a[i, p] * b[p, j]
            out[i, j] = s


@njit(cache=True, fastmath=True)
def _reordered(a, b, out):
    n, k = a.shape
    m = b.shape[1]
    out[:] = 0
    for i in range(n):
        for p in range(k):
            aip = a[i, p]
            for j in range(m):
                out[i, j] += aip * b[p, j]


@njit(cache=True, fastmath=True, inline="always")
def _tile_rows(a, b, out, i0, i1):
    """C[i0:i1] = A[i0:i1] @ B, one (k block, column block) tile of B at a time.

    The B tile (DEPTH_BLOCK x COL_BLOCK) stays in L2 while every row of the block reuses it, and
    row views hand the inner loop two plain 1-D arrays to vectorize.
    """
    k = a.shape[1]
    m = b.shape[1]
    for i in range(i0, i1):
        out[i, :] = 0
    for p0 in range(0, k, DEPTH_BLOCK):
        p1 = min(p0 + DEPTH_BLOCK, k)
        for j0 in range(0, m, COL_BLOCK):
            j1 = min(j0 + COL_BLOCK, m)
            for i in range(i0, i1):
                crow = out[i, j0:j1]
                arow = a[i]
                for p in range(p0, p1):
                    aip = arow[p]
                    brow = b[p, j0:j1]
                    for j in range(j1 - j0):
                        crow[j] += aip * brow[j]


@njit(cache=True, fastmath=True)
def _tiled(a, b, out):
    n = a.shape[0]
    for i0 in range(0, n, ROW_BLOCK):
        _tile_rows(a, b, out, i0, min(i0 + ROW_BLOCK, n))


@njit(cache=True, fastmath=True, parallel=True)
def _parallel(a, b, out):
    n = a.shape[0]
    for blk in prange((n + ROW_BLOCK - 1) // ROW_BLOCK):
        i0 = blk * ROW_BLOCK
        _tile_rows(a, b, out, i0, min(i0 + ROW_BLOCK, n))


@njit(cache=True, fastmath=True, inline="always")
def _dot4x2(a0, a1, a2, a3, b0, b1, zero):
    """Eight dot products (4 rows of A by 2 rows of B^T), their sums held in registers."""
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
    for p in range(a0.shape[0]):
        x0, x1, x2, x3, y0, y1 = a0[p], a1[p], a2[p], a3[p], b0[p], b1[p]
        s00 += x0 * y0
        s01 += x0 * y1
        s10 += x1 * y0
        s11 += x1 * y1
        s20 += x2 * y0
        s21 += x2 * y1
        s30 += x3 * y0
        s31 += x3 * y1
    return s00, s01, s10, s11, s20, s21, s30, s31


@njit(cache=True, fastmath=True, parallel=True)
def _packed(a, bt, out, zero):
    """C = A @ B with ``bt`` = B^T; rows of A a multiple of 4, rows of ``bt`` a multiple of 2."""
    n = a.shape[0]
    m = bt.shape[0]
    for blk in prange(n // 4):
        i = 4 * blk
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        for j in range(0, m, 2):
            s = _dot4x2(a0, a1, a2, a3, bt[j], bt[j + 1], zero)
            out[i, j], out[i, j + 1] = s[0], s[1]
            out[i + 1, j], out[i + 1, j + 1] = s[2], s[3]
            out[i + 2, j], out[i + 2, j + 1] = s[4], s[5]
            out[i + 3, j], out[i + 3, j + 1] = s[6], s[7]


@njit(cache=True, parallel=True)
def _pack_transposed(b, rows):
    """B^T as a contiguous array, zero rows appended up to a multiple of ``rows``.

    Copied in 32x32 blocks so that both the reads and the writes stay within a few cache lines.
    """
    k, m = b.shape
    bt = np.zeros((m + (-m) % rows, k), b.dtype)
    for jb in prange((m + 31) // 32):
        for p0 in range(0, k, 32):
            for j in range(32 * jb, min(32 * jb + 32, m)):
                for p in range(p0, min(p0 + 32, k)):
                    bt[j, p] = b[p, j]
    return bt


def _padded(x: np.ndarray, rows: int) -> np.ndarray:
    """``x`` (contiguous) with zero rows appended up to a multiple of ``rows``."""
    extra = -x.shape[0] % rows
    x = np.ascontiguousarray(x)
    return np.concatenate([x, np.zeros((extra, x.shape[1]), x.dtype)]) if extra else x


def _run_packed(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    ap, bt = _padded(a, 4), usable(_pack_transposed)(np.ascontiguousarray(b), 2)
    if ap.shape[0] == a.shape[0] and bt.shape[0] == b.shape[1]:
        usable(_packed)(ap, bt, out, out.dtype.type(0))
        return
    full = np.empty((ap.shape[0], bt.shape[0]), out.dtype)
    usable(_packed)(ap, bt, full, out.dtype.type(0))
    out[...] = full[: a.shape[0], : b.shape[1]]


def _contiguous(kernel: Callable[..., None]) -> Callable[[np.ndarray, np.ndarray, np.ndarray], None]:
    def run(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        usable(kernel)(np.ascontiguousarray(a), np.ascontiguousarray(b), out)

    run.__name__ = kernel.__name__.lstrip("_")
    return run


naive = _contiguous(_naive)
reordered = _contiguous(_reordered)
tiled = _contiguous(_tiled)
parallel = _contiguous(_parallel)
packed = _run_packed

# stage name -> kernel(a, b, out), in teaching order
STAGES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], None]] = {
    "naive": naive, "reordered": reordered, "tiled": tiled, "parallel": parallel, "packed": packed,
}


def matmul(a: np.ndarray, b: np.ndarray, stage: str = "packed") -> np.ndarray:
    """``a @ b`` for 2-D float arrays of one dtype, computed by the named stage."""
    if stage not in STAGES:
        raise ValueError(f"matmul: unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected 2-D operands (n, k) @ (k, m), got {a.shape} @ {b.shape}")
    if a.dtype != b.dtype or a.dtype.kind != "f":
        raise TypeError(f"matmul: expected two float arrays of one dtype, got {a.dtype} and {b.dtype}")
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    STAGES[stage](a, b, out)
    return out
