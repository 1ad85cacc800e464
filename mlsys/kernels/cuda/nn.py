"""CUDA kernels of the neural-network and row-wise primitives, on device arrays.

Each function takes and returns :class:`~mlsys.kernels.cuda.memory.DeviceArray` s and launches
grid-stride kernels (a thread per output element or per row).

* softmax and log_softmax along an axis, by the online rule (Milakov and Gimelshein, "Online
  normalizer calculation for softmax", 2018): one pass keeps a running maximum and a sum of
  ``exp(x - max)`` rescaled whenever the maximum grows, a second writes the result, so each row
  is read twice instead of three times. Short rows get a thread each; long contiguous rows a
  block each, whose threads merge their (max, sum) pairs in shared memory;
* nll_loss and its gradient, one_hot, argmax/argmin, cumsum, argsort (a stable rank per
  element, NaN largest, as the reference);
* unfold2d (im2col) and fold2d (col2im, written as a gather: each image element sums the
  columns that cover it, so no two threads write one address).

Class and position indices are checked against the bounds their device array carries
(:attr:`DeviceArray.bounds`, known when it was uploaded or made by a kernel), so the check
costs no transfer; an index array of unknown bounds is measured on the device first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import float32, float64

from ...ops._rules import reduced_shape
from ...ops.nn import conv_output_size
from ...ops.registry import PRIMITIVES
from .loops import ROW_BLOCK, choose_strategy, copy_into, fill, reduction, scalar_functions
from .memory import DeviceArray, download, empty, kernel_view
from .runtime import SIMULATOR, cuda, stride_launch

__all__ = ["softmax", "nll_loss", "nll_loss_grad", "one_hot", "arg_extremum", "cumsum", "argsort",
           "unfold2d", "fold2d", "check_indices", "rows_of", "restore_rows", "grid_stride"]

_exp, _log = scalar_functions()["exp"], scalar_functions()["log"]
_FLOATS = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}


def grid_stride(kernel: Callable, items: int, *args: Any) -> None:
    """Launch a grid-stride ``kernel`` over ``items`` work items (nothing when there are none)."""
    if items:
        blocks, threads = stride_launch(items)
        with np.errstate(all="ignore"):
            kernel[blocks, threads](*args)


def rows_of(x: DeviceArray, axis: int) -> DeviceArray:
    """``x`` with ``axis`` moved last and the others flattened: a (rows, n) view when the
    layout allows, else a contiguous copy (``axis`` may count from the end)."""
    if not x.ndim:
        return x.reshape(1, 1)
    axis %= x.ndim
    order = [d for d in range(x.ndim) if d != axis] + [axis]
    rows = int(np.prod([x.shape[d] for d in order[:-1]], dtype=np.int64))
    return x.transpose(order).reshape(rows, x.shape[axis])


def restore_rows(rows: DeviceArray, like: DeviceArray, axis: int) -> DeviceArray:
    """Results laid out as :func:`rows_of` ``(like, axis)`` back in ``like``'s shape, contiguous."""
    if not like.ndim:
        return rows.reshape(())
    axis %= like.ndim
    order = [d for d in range(like.ndim) if d != axis] + [axis]
    moved = rows.reshape(tuple(like.shape[d] for d in order))
    back = moved.transpose(tuple(np.argsort(order)))
    return back if back.c_contiguous else back.copy()


# -- softmax -------------------------------------------------------------------------------------
@cuda.jit(device=True)
def _merge(m1, s1, m2, s2):
    """(max, sum of exp(x - max)) of two parts combined; NaN anywhere makes both NaN."""
    if m1 != m1 or m2 != m2:
        return m1 + m2, s1 + s2
    m = max(m1, m2)
    if m == -math.inf:
        return m, s1 + s2
    return m, s1 * _exp(m1 - m) + s2 * _exp(m2 - m)


@functools.cache
def _softmax_kernel(log: bool, dtype: np.dtype, rows: bool) -> Callable:
    F = dtype.type
    shared = _FLOATS[dtype]

    def write(x, out, r, j, m, s):
        if log:
            out[r, j] = x[r, j] - m - _log(s)
        else:
            out[r, j] = _exp(x[r, j] - m) / s

    write = cuda.jit(device=True)(write)

    @cuda.jit
    def per_thread(x, out):
        for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            m, s = F(-math.inf), F(0)
            for j in range(x.shape[1]):
                m, s = _merge(m, s, x[r, j], F(1))
            for j in range(x.shape[1]):
                write(x, out, r, j, m, s)

    @cuda.jit
    def per_block(x, out):
        mbuf = cuda.shared.array(ROW_BLOCK, shared)
        sbuf = cuda.shared.array(ROW_BLOCK, shared)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            m, s = F(-math.inf), F(0)
            for j in range(tid, x.shape[1], ROW_BLOCK):
                m, s = _merge(m, s, x[r, j], F(1))
            mbuf[tid], sbuf[tid] = m, s
            cuda.syncthreads()
            half = ROW_BLOCK // 2
            while half > 0:
                if tid < half:
                    mbuf[tid], sbuf[tid] = _merge(mbuf[tid], sbuf[tid], mbuf[tid + half],
                                                  sbuf[tid + half])
                cuda.syncthreads()
                half //= 2
            m, s = mbuf[0], sbuf[0]
            for j in range(tid, x.shape[1], ROW_BLOCK):
                write(x, out, r, j, m, s)
            cuda.syncthreads()

    return per_block if rows else per_thread


def softmax(x: DeviceArray, axis: int, log: bool = False, strategy: str | None = None,
            out: DeviceArray | None = None) -> DeviceArray:
    """Softmax (or log-softmax) of a float device array along ``axis`` (into ``out`` when
    given); ``strategy`` is ``"rows"`` (a block per row), ``"threads"`` (a thread per row) or
    None to choose by length."""
    if x.dtype not in _FLOATS:
        raise TypeError(f"softmax: the CUDA kernel takes float32 or float64, got {x.dtype}")
    rows = rows_of(x, axis)
    last = axis == x.ndim - 1 and out is not None and out.c_contiguous
    result = out.reshape(rows.shape) if last else empty(rows.shape, x.dtype)
    strategy = choose_strategy(strategy, rows, 1)
    kernel = _softmax_kernel(log, x.dtype, strategy == "rows")
    if rows.size:
        if strategy == "rows":
            blocks = 1 if SIMULATOR else min(rows.shape[0], 65535)
            with np.errstate(all="ignore"):
                kernel[blocks, ROW_BLOCK](kernel_view(rows), kernel_view(result))
        else:
            grid_stride(kernel, rows.shape[0], kernel_view(rows), kernel_view(result))
    if last:
        return out
    result = restore_rows(result, x, axis)
    return result if out is None else copy_into(out, result)


# -- index checks --------------------------------------------------------------------------------
@cuda.jit
def _extremes_kernel(idx, out):
    if cuda.grid(1) == 0:
        low, high = idx[0], idx[0]
        for i in range(1, idx.shape[0]):
            low, high = min(low, idx[i]), max(high, idx[i])
        out[0], out[1] = low, high


def check_indices(idx: DeviceArray, low: int, high: int, message: Callable[[int], str]) -> None:
    """Raise ``IndexError(message(bad))`` (the reference's words) unless every index lies in
    [low, high).

    Uses ``idx.bounds`` when known; otherwise one kernel finds them and their two values cross
    the bus (counted)."""
    if not idx.size:
        return
    if idx.bounds is None:
        flat = idx.reshape(-1)
        out = empty((2,), np.int64)
        _extremes_kernel[1, 1](kernel_view(flat), kernel_view(out))
        idx.bounds = tuple(int(v) for v in download(out))
    least, most = idx.bounds
    for bad in (least, most):
        if not low <= bad < high:
            raise IndexError(message(bad))


def _classes(name: str, classes: int) -> Callable[[int], str]:
    return lambda bad: f"{name}: class index {bad} is out of range for {classes} classes"


# -- losses and encodings ------------------------------------------------------------------------
@cuda.jit
def _nll_kernel(logp, target, out):
    positions = target.shape[1]
    for i in range(cuda.grid(1), target.shape[0] * positions, cuda.gridsize(1)):
        n, p = i // positions, i % positions
        out[n, p] = -logp[n, target[n, p], p]


def _samples(x: DeviceArray) -> DeviceArray:
    """``(N, d1, ...)`` as ``(N, D)``."""
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))


def nll_loss(logp: DeviceArray, target: DeviceArray, reduction_: str) -> DeviceArray:
    """Negative log-likelihood of ``target`` classes under ``logp`` (N, C, d...)."""
    check_indices(target, 0, logp.shape[1], _classes("nll_loss", logp.shape[1]))
    picked = empty(target.shape, logp.dtype)
    t2 = _samples(target)
    l3 = logp.reshape(logp.shape[0], logp.shape[1], t2.shape[1])
    grid_stride(_nll_kernel, target.size, kernel_view(l3), kernel_view(t2),
                kernel_view(picked.reshape(t2.shape)))
    if reduction_ == "none":
        return picked
    if reduction_ == "mean" and picked.size == 0:
        return fill(empty((), logp.dtype), 0)
    prim = PRIMITIVES["mean" if reduction_ == "mean" else "sum"]
    return reduction(prim, picked, None, False, logp.dtype)


@cuda.jit
def _nll_grad_kernel(g, target, scale, out):
    positions = target.shape[1]
    for i in range(cuda.grid(1), target.shape[0] * positions, cuda.gridsize(1)):
        n, p = i // positions, i % positions
        out[n, target[n, p], p] = scale * g[n, p]


def nll_loss_grad(g: DeviceArray, target: DeviceArray, classes: int, reduction_: str) -> DeviceArray:
    """The gradient of nll_loss: ``-g`` (scaled by 1/count for the mean) at each target class."""
    check_indices(target, 0, classes, _classes("nll_loss", classes))
    out = fill(empty(target.shape[:1] + (classes,) + target.shape[1:], g.dtype), 0)
    scale = g.dtype.type(-1.0 / max(target.size, 1) if reduction_ == "mean" else -1.0)
    t2 = _samples(target)
    o3 = out.reshape(out.shape[0], classes, t2.shape[1])
    g2 = g.broadcast_to(target.shape).reshape(t2.shape)
    grid_stride(_nll_grad_kernel, target.size, kernel_view(g2), kernel_view(t2), scale, kernel_view(o3))
    return out


@cuda.jit
def _one_hot_kernel(idx, out):
    for i in range(cuda.grid(1), idx.shape[0], cuda.gridsize(1)):
        out[i, idx[i]] = 1


def one_hot(idx: DeviceArray, num_classes: int, dtype: np.dtype) -> DeviceArray:
    check_indices(idx, 0, num_classes, _classes("one_hot", num_classes))
    out = fill(empty(idx.shape + (num_classes,), dtype), 0)
    grid_stride(_one_hot_kernel, idx.size, kernel_view(idx.reshape(-1)),
                kernel_view(out.reshape(-1, num_classes)))
    return out


# -- along one axis ------------------------------------------------------------------------------
@functools.cache
def _arg_kernel(smallest: bool) -> Callable:
    @cuda.jit
    def kernel(x, out):
        for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            best, at = x[r, 0], 0
            for j in range(1, x.shape[1]):
                v = x[r, j]
                if best == best and (v != v or (v < best if smallest else v > best)):
                    best, at = v, j  # the first NaN wins, as in numpy
            out[r] = at

    return kernel


def arg_extremum(x: DeviceArray, axis: tuple[int, ...] | None, keepdims: bool, smallest: bool) -> DeviceArray:
    """argmax (argmin when ``smallest``) over one axis or all of them; the result's bounds are
    known: [0, n)."""
    rows = x.reshape(1, -1) if axis is None else rows_of(x, axis[0])
    out = empty(reduced_shape(x.shape, axis, keepdims), np.int64)
    grid_stride(_arg_kernel(smallest), rows.shape[0], kernel_view(rows), kernel_view(out.reshape(-1)))
    out.bounds = (0, max(rows.shape[1] - 1, 0))
    return out


@cuda.jit
def _cumsum_kernel(x, out, zero):
    for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        acc = zero
        for j in range(x.shape[1]):
            acc += x[r, j]
            out[r, j] = acc


def cumsum(x: DeviceArray, axis: int, out_dtype: np.dtype) -> DeviceArray:
    rows = rows_of(x, axis)
    out = empty(rows.shape, out_dtype)
    grid_stride(_cumsum_kernel, rows.shape[0], kernel_view(rows), kernel_view(out), out.dtype.type(0))
    return restore_rows(out, x, axis)


@functools.cache
def _rank_kernel(descending: bool) -> Callable:
    @cuda.jit(device=True)
    def before(v, w):  # v sorts strictly before w; NaN is the largest value
        v_nan, w_nan = v != v, w != w
        if descending:
            return (v_nan and not w_nan) or (not v_nan and not w_nan and v > w)
        return (w_nan and not v_nan) or (not v_nan and not w_nan and v < w)

    @cuda.jit
    def kernel(x, out):
        n = x.shape[1]
        for i in range(cuda.grid(1), x.shape[0] * n, cuda.gridsize(1)):
            r, j = i // n, i % n
            v = x[r, j]
            rank = 0
            for k in range(n):
                w = x[r, k]
                tied = not before(w, v) and not before(v, w)
                if before(w, v) or (tied and k < j):
                    rank += 1
            out[r, rank] = j

    return kernel


def argsort(x: DeviceArray, axis: int, descending: bool) -> DeviceArray:
    """Stable order along ``axis``: each element's rank counts those before it (quadratic in the
    row length: for short rows)."""
    if x.ndim == 0:
        return fill(empty((), np.int64), 0)
    rows = rows_of(x, axis)
    out = empty(rows.shape, np.int64)
    grid_stride(_rank_kernel(descending), rows.size, kernel_view(rows), kernel_view(out))
    result = restore_rows(out, x, axis)
    result.bounds = (0, max(x.shape[axis] - 1, 0))
    return result


# -- im2col and col2im ---------------------------------------------------------------------------
@cuda.jit
def _unfold_kernel(x, out, kh, kw, sh, sw, ph, pw, wo, zero):
    rows, length = out.shape[1], out.shape[2]
    for i in range(cuda.grid(1), out.shape[0] * rows * length, cuda.gridsize(1)):
        n, rest = i // (rows * length), i % (rows * length)
        row, pos = rest // length, rest % length
        c, ki, kj = row // (kh * kw), (row // kw) % kh, row % kw
        y, z = (pos // wo) * sh + ki - ph, (pos % wo) * sw + kj - pw
        inside = 0 <= y < x.shape[2] and 0 <= z < x.shape[3]
        out[n, row, pos] = x[n, c, y, z] if inside else zero


def unfold2d(x: DeviceArray, kernel_size: tuple, stride: tuple, padding: tuple) -> DeviceArray:
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    out = empty((n, c * kh * kw, ho * wo), x.dtype)
    grid_stride(_unfold_kernel, out.size, kernel_view(x), kernel_view(out), kh, kw, sh, sw, ph, pw, wo,
            x.dtype.type(0))
    return out


@cuda.jit
def _fold_kernel(cols, out, kh, kw, sh, sw, ph, pw, ho, wo, zero):
    c_, h, w = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), out.shape[0] * c_ * h * w, cuda.gridsize(1)):
        z = i % w
        y = (i // w) % h
        c = (i // (w * h)) % c_
        n = i // (w * h * c_)
        acc = zero
        for ki in range(kh):
            oy = y + ph - ki
            if oy < 0 or oy % sh or oy // sh >= ho:
                continue
            for kj in range(kw):
                oz = z + pw - kj
                if oz < 0 or oz % sw or oz // sw >= wo:
                    continue
                acc += cols[n, (c * kh + ki) * kw + kj, (oy // sh) * wo + oz // sw]
        out[n, c, y, z] = acc


def fold2d(cols: DeviceArray, input_size: tuple, kernel_size: tuple, stride: tuple,
           padding: tuple) -> DeviceArray:
    (h, w), (kh, kw), (sh, sw), (ph, pw) = input_size, kernel_size, stride, padding
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    out = empty((cols.shape[0], cols.shape[1] // (kh * kw), h, w), cols.dtype)
    grid_stride(_fold_kernel, out.size, kernel_view(cols), kernel_view(out), kh, kw, sh, sw, ph, pw, ho, wo,
            cols.dtype.type(0))
    return out
