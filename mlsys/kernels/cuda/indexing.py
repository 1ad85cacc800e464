"""CUDA kernels of the indexing and movement primitives, on device arrays.

``take`` (an embedding lookup) and ``gather`` read through an index array; their adjoints
``put_add`` and ``put_along_add`` add into zeros with atomic adds, because two indices may name
one row (a repeated token). Basic indexing is a view; ``concatenate``, ``pad``, ``setitem`` and
``scatter_add`` at a basic index are copies into views of a new array.

An index with arrays in it (``x[[0, 2], 1:]``, a boolean mask) is a parameter of the primitive,
held on the host: numpy's own indexing picks, on the host, the positions it selects (of an array
of positions, not of the values), and those positions are uploaded (a counted transfer) for a
kernel that gathers, adds or writes through them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .loops import copy_into, fill
from .memory import DeviceArray, empty, kernel_view, upload
from .nn import check_indices, grid_stride, restore_rows, rows_of
from .runtime import cuda

__all__ = ["take", "put_add", "gather", "put_along_add", "basic", "concatenate", "pad", "setitem",
           "scatter_add", "getitem"]


def basic(key: tuple) -> bool:
    """Whether an index has only ints, slices, None and Ellipsis (a view, no gather)."""
    return all(k is None or k is Ellipsis or isinstance(k, slice)
               or (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)))
               for k in key)


def _around(x: DeviceArray, axis: int, ndim: int) -> DeviceArray:
    """``x`` as (before, middle, after), the middle being its ``ndim`` dimensions from ``axis``."""
    size = lambda dims: int(np.prod(dims, dtype=np.int64))  # noqa: E731
    return x.reshape(size(x.shape[:axis]), size(x.shape[axis:axis + ndim]), size(x.shape[axis + ndim:]))


def _out_of_range(name: str, axis: int, n: int) -> Callable[[int], str]:
    return lambda bad: f"{name}: index {bad} is out of range for dimension {axis} of size {n}"


@cuda.jit
def _take_kernel(x, idx, out):
    count, after, n = idx.shape[0], out.shape[2], x.shape[1]
    for i in range(cuda.grid(1), out.shape[0] * count * after, cuda.gridsize(1)):
        a, j, b = i // (count * after), (i // after) % count, i % after
        row = idx[j]
        out[a, j, b] = x[a, row + n if row < 0 else row, b]


def take(x: DeviceArray, idx: DeviceArray, axis: int) -> DeviceArray:
    n = x.shape[axis]
    check_indices(idx, -n, n, _out_of_range("take", axis, n))
    out = empty(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)
    grid_stride(_take_kernel, out.size, kernel_view(_around(x, axis, 1)),
            kernel_view(idx.reshape(-1)), kernel_view(_around(out, axis, idx.ndim)))
    return out


@cuda.jit
def _put_add_kernel(g, idx, out):
    count, after, size = idx.shape[0], g.shape[2], out.shape[1]
    for i in range(cuda.grid(1), g.shape[0] * count * after, cuda.gridsize(1)):
        a, j, b = i // (count * after), (i // after) % count, i % after
        row = idx[j]
        cuda.atomic.add(out, (a, row + size if row < 0 else row, b), g[a, j, b])


def put_add(g: DeviceArray, idx: DeviceArray, axis: int, size: int) -> DeviceArray:
    check_indices(idx, -size, size, _out_of_range("put_add", axis, size))
    out = fill(empty(g.shape[:axis] + (size,) + g.shape[axis + idx.ndim:], g.dtype), 0)
    grid_stride(_put_add_kernel, g.size, kernel_view(_around(g, axis, idx.ndim)),
            kernel_view(idx.reshape(-1)), kernel_view(_around(out, axis, 1)))
    return out


def _fit(x: DeviceArray, idx: DeviceArray, axis: int) -> DeviceArray:
    """``x`` cut to ``idx``'s size along every axis but ``axis`` (a view)."""
    return x[tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(idx.shape))]


@cuda.jit
def _gather_kernel(x, idx, out):
    k = idx.shape[1]
    for i in range(cuda.grid(1), idx.shape[0] * k, cuda.gridsize(1)):
        r, j = i // k, i % k
        out[r, j] = x[r, idx[r, j]]


def gather(x: DeviceArray, idx: DeviceArray, axis: int) -> DeviceArray:
    n = x.shape[axis]
    check_indices(idx, 0, n, _out_of_range("gather", axis, n))
    rows, index = rows_of(_fit(x, idx, axis), axis), rows_of(idx, axis)
    out = empty(index.shape, x.dtype)
    grid_stride(_gather_kernel, out.size, kernel_view(rows), kernel_view(index), kernel_view(out))
    return restore_rows(out, idx, axis)


@cuda.jit
def _put_along_kernel(g, idx, out):
    k = idx.shape[1]
    for i in range(cuda.grid(1), idx.shape[0] * k, cuda.gridsize(1)):
        r, j = i // k, i % k
        cuda.atomic.add(out, (r, idx[r, j]), g[r, j])


def put_along_add(g: DeviceArray, idx: DeviceArray, axis: int, shape: tuple[int, ...]) -> DeviceArray:
    n = shape[axis]
    check_indices(idx, 0, n, _out_of_range("put_along_add", axis, n))
    out = fill(empty(shape, g.dtype), 0)
    region = _fit(out, idx, axis)  # the part of the result the indices can reach
    sums = fill(empty(rows_of(region, axis).shape, g.dtype), 0)
    grid_stride(_put_along_kernel, idx.size, kernel_view(rows_of(g, axis)), kernel_view(rows_of(idx, axis)),
            kernel_view(sums))
    copy_into(region, restore_rows(sums, region, axis))
    return out


def concatenate(xs: list[DeviceArray], axis: int, dtype: np.dtype) -> DeviceArray:
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = empty(tuple(shape), dtype)
    start = 0
    for x in xs:
        copy_into(out[(slice(None),) * axis + (slice(start, start + x.shape[axis]),)], x)
        start += x.shape[axis]
    return out


def pad(x: DeviceArray, widths: tuple, value: Any) -> DeviceArray:
    out = fill(empty(tuple(n + b + a for n, (b, a) in zip(x.shape, widths)), x.dtype), value)
    copy_into(out[tuple(slice(b, b + n) for n, (b, _) in zip(x.shape, widths))], x)
    return out


def _positions(shape: tuple[int, ...], key: tuple) -> np.ndarray:
    """The C-order positions in an array of ``shape`` that numpy's ``array[key]`` selects."""
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)[key]


def _flat(x: DeviceArray) -> DeviceArray:
    return (x if x.c_contiguous else x.copy()).reshape(-1)


@cuda.jit
def _read_at_kernel(src, positions, out):
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = src[positions[i]]


@cuda.jit
def _write_at_kernel(values, pairs, out):
    for i in range(cuda.grid(1), pairs.shape[1], cuda.gridsize(1)):
        out[pairs[0, i]] = values[pairs[1, i]]


@cuda.jit
def _add_at_kernel(values, positions, out):
    for i in range(cuda.grid(1), positions.shape[0], cuda.gridsize(1)):
        cuda.atomic.add(out, positions[i], values[i])


def getitem(x: DeviceArray, key: tuple) -> DeviceArray:
    """``x[key]``: a view for a basic index, else a gather through the selected positions."""
    if basic(key):
        return x[key]
    positions = _positions(x.shape, key)
    out = empty(positions.shape, x.dtype)
    grid_stride(_read_at_kernel, out.size, kernel_view(_flat(x)),
                kernel_view(upload(positions.reshape(-1))), kernel_view(out.reshape(-1)))
    return out


def setitem(x: DeviceArray, v: Any, key: tuple) -> DeviceArray:
    """``x`` with ``v`` written at ``key`` (out of place). Where an index names a position twice,
    the last value is written, as in numpy."""
    out = x.copy()
    if basic(key):
        copy_into(out[key], v)
        return out
    selected = _positions(x.shape, key)
    positions = selected.reshape(-1)
    if not positions.size:
        return out
    values = _flat(v.broadcast_to(selected.shape))
    last = positions.size - 1 - np.unique(positions[::-1], return_index=True)[1]
    pairs = upload(np.stack([positions[last], last]))  # where to write, which value: one copy
    grid_stride(_write_at_kernel, last.size, kernel_view(values), kernel_view(pairs),
                kernel_view(out.reshape(-1)))
    return out


def scatter_add(g: DeviceArray, key: tuple, shape: tuple[int, ...]) -> DeviceArray:
    """Zeros of ``shape`` with ``g`` added at ``key`` (repeated positions accumulate)."""
    out = fill(empty(shape, g.dtype), 0)
    if basic(key):
        copy_into(out[key], g)
        return out
    positions = _positions(shape, key)
    grid_stride(_add_at_kernel, positions.size, kernel_view(_flat(g.broadcast_to(positions.shape))),
                kernel_view(upload(positions.reshape(-1))), kernel_view(out.reshape(-1)))
    return out
