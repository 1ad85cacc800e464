"""Tensor constructors: zeros, ones, full, arange, rand, randn (float32 by default, as in PyTorch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .ops import nn as NN
from .tensor import DEFAULT_DTYPE, Tensor, filled


def _shape(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"expected a shape of non-negative integers, got {size}")
    return tuple(int(n) for n in size)


def zeros(*size: int | Sequence[int], dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
          device: str = "cpu") -> Tensor:
    return _filled(_shape(size), 0, dtype, device, requires_grad)


def ones(*size: int | Sequence[int], dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
         device: str = "cpu") -> Tensor:
    return _filled(_shape(size), 1, dtype, device, requires_grad)


def full(size: Sequence[int], fill_value: float, dtype: Any = DEFAULT_DTYPE,
         requires_grad: bool = False, device: str = "cpu") -> Tensor:
    return _filled(_shape((size,)), fill_value, dtype, device, requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return _filled(t.shape, 0, t.dtype, t.device, requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return _filled(t.shape, 1, t.dtype, t.device, requires_grad)


def _filled(shape: tuple[int, ...], value: float, dtype: Any, device: str,
            requires_grad: bool) -> Tensor:
    """Made on ``device`` (a device with its own memory fills it there: no transfer)."""
    out = filled(shape, value, dtype, device)
    return out.requires_grad_(True) if requires_grad else out


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None) -> Tensor:
    values = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None:
        dtype = np.int64 if values.dtype.kind in "iu" else DEFAULT_DTYPE
    return Tensor(values.astype(dtype))


def rand(*size: int | Sequence[int], dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from the global generator (``mlsys.manual_seed``)."""
    out = NN.random_draw(shape=_shape(size), dtype=np.dtype(dtype), distribution="uniform")
    return out.requires_grad_(True) if requires_grad else out


def randn(*size: int | Sequence[int], dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the global generator (``mlsys.manual_seed``)."""
    out = NN.random_draw(shape=_shape(size), dtype=np.dtype(dtype), distribution="normal")
    return out.requires_grad_(True) if requires_grad else out
