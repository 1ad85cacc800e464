"""Register the Numba CPU kernels as the ``"numba"`` implementations of registry primitives.

Importing this module (done by ``Tensor.to("numba")``) fills ``Primitive.impls["numba"]``. Each
implementation takes the primitive's numpy inputs and parameters and returns ``NotImplemented``
for inputs it does not handle, which sends them to the numpy reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops._rules import reduced_shape
from ...ops.registry import PRIMITIVES
from ..layout import register_views
from . import matmul as mm
from . import nn
from .elementwise import UFUNCS

DEVICE = "numba"


def _floats(*arrays: np.ndarray) -> bool:
    """All inputs share one float dtype the kernels were compiled for."""
    dtype = arrays[0].dtype
    return dtype in (np.float32, np.float64) and all(a.dtype == dtype for a in arrays)


def _elementwise(ufunc: Any) -> Any:
    def impl(*arrays: np.ndarray) -> Any:
        return ufunc(*arrays) if _floats(*arrays) else NotImplemented

    return impl


def _matmul(a: np.ndarray, b: np.ndarray) -> Any:
    if a.ndim != 2 or b.ndim != 2 or not _floats(a, b):
        return NotImplemented
    return mm.matmul(a, b, "packed")


def as_three_axes(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, int, int] | None:
    """``(outer, reduced, inner)`` sizes when ``axis`` is one run of adjacent axes, else None."""
    axes = tuple(range(len(shape))) if axis is None else axis
    if not axes or list(axes) != list(range(axes[0], axes[-1] + 1)):
        return None
    size = lambda dims: int(np.prod(dims, dtype=np.int64))
    return size(shape[:axes[0]]), size(shape[axes[0]:axes[-1] + 1]), size(shape[axes[-1] + 1:])


def _reduction(op: str, mean: bool = False) -> Any:
    def impl(x: np.ndarray, *, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
        dims = as_three_axes(x.shape, axis)
        if dims is None or dims[1] == 0 or not _floats(x):
            return NotImplemented
        out = nn.reduce3(np.ascontiguousarray(x).reshape(dims), op)
        if mean:
            out /= dims[1]
        return out.reshape(reduced_shape(x.shape, axis, keepdims))

    return impl


def _rows(kernel: Any) -> Any:
    def impl(x: np.ndarray, *, axis: int) -> Any:
        if axis != x.ndim - 1 or not _floats(x) or x.shape[-1] == 0:
            return NotImplemented
        return kernel(x)

    return impl


IMPLS: dict[str, Any] = {
    **{name: _elementwise(ufunc) for name, ufunc in UFUNCS.items()},
    "matmul": _matmul,
    "sum": _reduction("sum"),
    "mean": _reduction("sum", mean=True),
    "max": _reduction("max"),
    "softmax": _rows(nn.softmax_rows),
    "log_softmax": _rows(nn.log_softmax_rows),
}

for _name, _impl in IMPLS.items():
    PRIMITIVES[_name].impls[DEVICE] = _impl
register_views(DEVICE)
