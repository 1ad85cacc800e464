"""Register the CUDA kernels as the ``"cuda"`` implementations of registry primitives.

Imported by ``Tensor.to("cuda")``. Every elementwise primitive gets a kernel generated from its
scalar template; matmul, sum and softmax their hand-written kernels (named by the primitive
objects, so no name can be misspelled). Operands are host arrays: each call copies its inputs to
the device and the result back, so the copies are part of every op's time (keeping tensors
resident on the GPU is the next step). Float32 only (bool for a condition); other dtypes and
layouts go to the numpy reference. Under the simulator the matmul tile is 8 (64 threads a block)
instead of 16, to keep it quick.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops import linalg
from ...ops import nn as nn_ops
from ...ops import reduce as reduce_ops
from ...ops.registry import PRIMITIVES, Primitive
from ..layout import register_views
from . import elementwise, matmul, reduce
from .runtime import SIMULATOR

DEVICE = "cuda"
TILE = 8 if SIMULATOR else 16


def _float32(*arrays: np.ndarray) -> bool:
    return all(a.dtype == np.float32 for a in arrays)


def _map(prim: Primitive) -> Any:
    def impl(*arrays: np.ndarray, **params: Any) -> Any:
        if not _float32(*(a for a in arrays if a.dtype != np.bool_)) or all(
                a.dtype == np.bool_ for a in arrays):
            return NotImplemented
        return elementwise.apply(prim, *arrays, **params)

    return impl


@linalg.matmul.implement(DEVICE)
def _matmul(a: np.ndarray, b: np.ndarray) -> Any:
    if a.ndim != 2 or b.ndim != 2 or not _float32(a, b):
        return NotImplemented
    return matmul.matmul(a, b, "tiled", TILE)


@reduce_ops.sum.implement(DEVICE)
def _sum(x: np.ndarray, *, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    if axis not in (None, tuple(range(x.ndim))) or not _float32(x) or x.size == 0:
        return NotImplemented
    total = np.asarray(reduce.total(x), np.float32)
    return total.reshape((1,) * x.ndim) if keepdims else total


@nn_ops.softmax.implement(DEVICE)
def _softmax(x: np.ndarray, *, axis: int) -> Any:
    if axis != x.ndim - 1 or not _float32(x):
        return NotImplemented
    if x.size == 0:
        return x.copy()
    return reduce.softmax(x.reshape(-1, x.shape[-1])).reshape(x.shape)


for _prim in PRIMITIVES.values():
    if _prim.elementwise:
        _prim.impls[DEVICE] = _map(_prim)
register_views(DEVICE)
