"""Reductions, row softmax, layer norm and direct 2-D convolution as Numba CPU kernels.

Reductions see their input as ``(outer, reduced, inner)``: any run of adjacent axes reduces that
way without a copy, and the inner loop stays contiguous (vectorized) in both the row case
(``inner == 1``) and the column case; each reduction primitive's kernel is generated from its
accumulator template (``Primitive.reduction``). Softmax and layer norm work on rows, one pass for the
statistics and one for the output, each row's values staying in cache between them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ...ops.registry import PRIMITIVES, Primitive, get
from .forksafe import usable
from .generated import load
from .vmath import exp

__all__ = ["reduce3", "softmax_rows", "log_softmax_rows", "layer_norm_rows", "conv2d", "FASTMATH"]

# fast-math without "no NaNs" and "no infinities": reassociation still vectorizes the loops, and
# NaN and inf keep their IEEE meaning (a NaN in a row makes its max, sum and softmax NaN)
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _reduce3_source(prim: Primitive) -> str:
    combine = prim.reduction.combine
    fastmath = "{" + ", ".join(map(repr, sorted(FASTMATH))) + "}"
    return f"""import numba
import numpy as np


@numba.njit(cache=True, fastmath={fastmath}, parallel=True, error_model="numpy")
def kernel(x, out):
    outer, red, inner = x.shape
    for o in numba.prange(outer):
        if inner == 1:  # a row: one scalar accumulator
            acc = x[o, 0, 0]
            for r in range(1, red):
                acc = {combine.format("acc", "x[o, r, 0]")}
            out[o, 0] = acc
        else:  # columns: a contiguous row of accumulators
            dst = out[o]
            dst[:] = x[o, 0]
            for r in range(1, red):
                row = x[o, r]
                for q in range(inner):
                    dst[q] = {combine.format("dst[q]", "row[q]")}
"""


def reduce3(x: np.ndarray, op: Primitive | str) -> np.ndarray:
    """Reduce the middle axis of a contiguous ``(outer, reduced, inner)`` array by reduction
    primitive ``op`` (or its name): the kernel is generated from its accumulator template."""
    prim = get(op) if isinstance(op, str) else op
    if prim.reduction is None:
        names = ", ".join(n for n, p in PRIMITIVES.items() if p.reduction is not None)
        raise ValueError(f"reduce3: op must be a reduction with an accumulator ({names}), "
                         f"got {prim.name!r}")
    if x.ndim != 3 or x.shape[1] == 0:
        raise ValueError(f"reduce3: expected a 3-D array with a non-empty middle axis, got {x.shape}")
    out = np.empty((x.shape[0], x.shape[2]), x.dtype)
    usable(load(_reduce3_source(prim)).kernel)(np.ascontiguousarray(x), out)
    if prim.reduction.mean:
        out /= x.shape[1]
    return out


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _softmax_rows(x, out, log):
    for i in prange(x.shape[0]):
        row, dst = x[i], out[i]
        peak = row[0]
        for j in range(1, row.shape[0]):
            peak = max(peak, row[j])
        total = row.dtype.type(0)
        for j in range(row.shape[0]):
            e = exp(row[j] - peak)  # vectorizable on float32, unlike math.exp
            dst[j] = e
            total += e
        if log:
            shift = peak + math.log(total)
            for j in range(row.shape[0]):
                dst[j] = row[j] - shift
        else:
            scale = 1 / total
            for j in range(row.shape[0]):
                dst[j] *= scale


def _rows(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim < 1 or x.shape[-1] == 0 or x.dtype.kind != "f":
        raise ValueError(f"{name}: expected a float array with a non-empty last axis, got "
                         f"{x.dtype}{list(x.shape)}")
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def softmax_rows(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (max subtracted before ``exp``)."""
    rows = _rows(x, "softmax_rows")
    out = np.empty_like(rows)
    usable(_softmax_rows)(rows, out, False)
    return out.reshape(x.shape)


def log_softmax_rows(x: np.ndarray) -> np.ndarray:
    """``x - logsumexp(x)`` over the last axis, computed stably."""
    rows = _rows(x, "log_softmax_rows")
    out = np.empty_like(rows)
    usable(_softmax_rows)(rows, out, True)
    return out.reshape(x.shape)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _layer_norm_rows(x, weight, bias, eps, out):
    n = x.shape[1]
    for i in prange(x.shape[0]):
        row, dst = x[i], out[i]
        mean = row.dtype.type(0)
        for j in range(n):
            mean += row[j]
        mean /= n
        var = row.dtype.type(0)
        for j in range(n):
            d = row[j] - mean
            var += d * d
        inv = 1 / math.sqrt(var / n + eps)
        for j in range(n):
            dst[j] = (row[j] - mean) * inv * weight[j] + bias[j]


def layer_norm_rows(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                    eps: float = 1e-5) -> np.ndarray:
    """Layer norm over the last axis with an affine ``weight`` and ``bias`` (biased variance)."""
    rows = _rows(x, "layer_norm_rows")
    if weight.shape != (rows.shape[1],) or bias.shape != (rows.shape[1],):
        raise ValueError(f"layer_norm_rows: weight and bias must have shape ({rows.shape[1]},), "
                         f"got {weight.shape} and {bias.shape}")
    out = np.empty_like(rows)
    usable(_layer_norm_rows)(rows, weight.astype(x.dtype), bias.astype(x.dtype), x.dtype.type(eps),
                             out)
    return out.reshape(x.shape)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _conv2d(x, w, out, stride, padding):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = out.shape[2], out.shape[3]
    for nf in prange(n * f):
        b, o = nf // f, nf % f
        plane = out[b, o]
        plane[:] = 0
        for ch in range(c):
            for j in range(kw):
                # output columns whose input column z * stride - padding + j is inside the image
                z0 = max(0, (padding - j + stride - 1) // stride)
                z1 = min(wo, (wd - 1 + padding - j) // stride + 1)
                for i in range(kh):
                    wv = w[o, ch, i, j]
                    for y in range(ho):
                        yy = y * stride - padding + i
                        if 0 <= yy < h and stride == 1:  # contiguous: vectorizes
                            src, dst = x[b, ch, yy, z0 - padding + j:z1 - padding + j], plane[y]
                            for z in range(z1 - z0):
                                dst[z0 + z] += wv * src[z]
                        elif 0 <= yy < h:
                            for z in range(z0, z1):
                                plane[y, z] += wv * x[b, ch, yy, z * stride - padding + j]


def conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Direct convolution (cross-correlation, as in PyTorch) of ``(N, C, H, W)`` by ``(F, C, kh, kw)``.

    No im2col buffer: each weight is broadcast over a whole output row, so the inner loop is a
    contiguous multiply-add over the output width.
    """
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: expected x (N, C, H, W) and w (F, C, kh, kw) with equal C, got "
                         f"{x.shape} and {w.shape}")
    if stride < 1 or padding < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    ho = (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1
    wo = (x.shape[3] + 2 * padding - w.shape[3]) // stride + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"conv2d: kernel {w.shape[2:]} does not fit input {x.shape[2:]} with "
                         f"padding {padding}")
    out = np.empty((x.shape[0], w.shape[0], ho, wo), x.dtype)
    usable(_conv2d)(np.ascontiguousarray(x), np.ascontiguousarray(w.astype(x.dtype)), out, stride,
                    padding)
    return out
