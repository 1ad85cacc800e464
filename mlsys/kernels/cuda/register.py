"""Register the CUDA kernels as the ``"cuda"`` implementations of registry primitives.

Imported by ``Tensor.to("cuda")``. Operands are host arrays: each call copies its inputs to the
device and the result back, so the copies are part of every op's time (keeping tensors resident
on the GPU is the next step). Float32 only; other dtypes and layouts go to the numpy reference.
Under the simulator the matmul tile is 8 (64 threads a block) instead of 16, to keep it quick.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops.registry import PRIMITIVES
from ..layout import register_views
from . import elementwise, matmul, reduce
from .runtime import SIMULATOR

DEVICE = "cuda"
TILE = 8 if SIMULATOR else 16


def _float32(*arrays: np.ndarray) -> bool:
    return all(a.dtype == np.float32 for a in arrays)


def _map(name: str) -> Any:
    def impl(*arrays: np.ndarray) -> Any:
        return elementwise.apply(name, *arrays) if _float32(*arrays) else NotImplemented

    return impl


def _matmul(a: np.ndarray, b: np.ndarray) -> Any:
    if a.ndim != 2 or b.ndim != 2 or not _float32(a, b):
        return NotImplemented
    return matmul.matmul(a, b, "tiled", TILE)


def _sum(x: np.ndarray, *, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    if axis not in (None, tuple(range(x.ndim))) or not _float32(x) or x.size == 0:
        return NotImplemented
    total = np.asarray(reduce.total(x), np.float32)
    return total.reshape((1,) * x.ndim) if keepdims else total


def _softmax(x: np.ndarray, *, axis: int) -> Any:
    if axis != x.ndim - 1 or not _float32(x) or x.size == 0:
        return NotImplemented
    return reduce.softmax(x.reshape(-1, x.shape[-1])).reshape(x.shape)


IMPLS: dict[str, Any] = {
    **{name: _map(name) for name in elementwise.SCALAR},
    "matmul": _matmul, "sum": _sum, "softmax": _softmax,
}

for _name, _impl in IMPLS.items():
    PRIMITIVES[_name].impls[DEVICE] = _impl
register_views(DEVICE)
