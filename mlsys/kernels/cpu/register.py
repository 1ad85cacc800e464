"""Register the Numba CPU kernels as the ``"numba"`` implementations of registry primitives.

Importing this module (done by ``Tensor.to("numba")``) fills ``Primitive.impls["numba"]``: every
elementwise primitive gets a ufunc generated from its scalar template, every reduction with an
accumulator a generated reduction kernel, and matmul and the row softmaxes their hand-written
kernels (named by the primitive objects, so no name can be misspelled). Each implementation
takes the primitive's numpy inputs and parameters and returns ``NotImplemented`` for inputs it
does not handle, which sends them to the numpy reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops import linalg
from ...ops import nn as nn_ops
from ...ops._rules import reduced_shape
from ...ops.registry import PRIMITIVES, Primitive
from ..layout import register_views
from . import matmul as mm
from . import nn
from .elementwise import supported, ufunc

DEVICE = "numba"


def _floats(*arrays: np.ndarray) -> bool:
    """All inputs share one float dtype the kernels were compiled for."""
    dtype = arrays[0].dtype
    return dtype in (np.float32, np.float64) and all(a.dtype == dtype for a in arrays)


def _elementwise(prim: Primitive) -> Any:
    def impl(*arrays: np.ndarray, **params: Any) -> Any:
        dtypes = tuple(a.dtype for a in arrays)
        if supported(dtypes) is None:
            return NotImplemented
        return ufunc(prim, dtypes, **params)(*arrays)

    return impl


def as_three_axes(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, int, int] | None:
    """``(outer, reduced, inner)`` sizes when ``axis`` is one run of adjacent axes, else None."""
    axes = tuple(range(len(shape))) if axis is None else axis
    if not axes or list(axes) != list(range(axes[0], axes[-1] + 1)):
        return None
    size = lambda dims: int(np.prod(dims, dtype=np.int64))
    return size(shape[:axes[0]]), size(shape[axes[0]:axes[-1] + 1]), size(shape[axes[-1] + 1:])


def _reduction(prim: Primitive) -> Any:
    def impl(x: np.ndarray, *, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
        dims = as_three_axes(x.shape, axis)
        if dims is None or dims[1] == 0 or not _floats(x):
            return NotImplemented
        out = nn.reduce3(np.ascontiguousarray(x).reshape(dims), prim)
        return out.reshape(reduced_shape(x.shape, axis, keepdims))

    return impl


@linalg.matmul.implement(DEVICE)
def _matmul(a: np.ndarray, b: np.ndarray) -> Any:
    if a.ndim != 2 or b.ndim != 2 or not _floats(a, b):
        return NotImplemented
    return mm.matmul(a, b, "packed")


def _rows(kernel: Any) -> Any:
    def impl(x: np.ndarray, *, axis: int) -> Any:
        if axis != x.ndim - 1 or not _floats(x):
            return NotImplemented
        return x.copy() if x.size == 0 else kernel(x)

    return impl


nn_ops.softmax.implement(DEVICE)(_rows(nn.softmax_rows))
nn_ops.log_softmax.implement(DEVICE)(_rows(nn.log_softmax_rows))
for _prim in PRIMITIVES.values():
    if _prim.elementwise:
        _prim.impls[DEVICE] = _elementwise(_prim)
    elif _prim.reduction is not None:
        _prim.impls[DEVICE] = _reduction(_prim)
register_views(DEVICE)
