"""Free functions over Tensors (``mlsys.exp``, ``mlsys.where``, ``mlsys.cat``...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .ops import elementwise as E
from .ops import shape as S
from .tensor import Tensor, as_tensors


def exp(x: Tensor) -> Tensor:
    return E.exp(x)


def log(x: Tensor) -> Tensor:
    return E.log(x)


def sqrt(x: Tensor) -> Tensor:
    return E.sqrt(x)


def tanh(x: Tensor) -> Tensor:
    return E.tanh(x)


def sigmoid(x: Tensor) -> Tensor:
    return E.sigmoid(x)


def maximum(a: Tensor, b: Any) -> Tensor:
    return E.maximum(a, a._lift(b))


def minimum(a: Tensor, b: Any) -> Tensor:
    return E.minimum(a, a._lift(b))


def abs(x: Tensor) -> Tensor:
    return E.abs(x)


def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    return x.clamp(min, max)


def where(condition: Tensor, a: Any, b: Any) -> Tensor:
    """``a`` where ``condition`` is true, else ``b`` (scalars take the other operand's dtype)."""
    ref = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else Tensor(0.0)
    return E.where(condition, ref._lift(a), ref._lift(b))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dimension."""
    tensors = as_tensors(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    ndim = tensors[0].ndim
    if not -ndim <= dim < ndim:
        raise ValueError(f"cat: dim {dim} is out of range for tensors with {ndim} dimensions")
    return S.concatenate(*tensors, axis=dim % ndim)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join along a new dimension; every tensor must have the same shape."""
    tensors = as_tensors(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)
