"""Shared shape and cost rules, so each op module states only what is particular to it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from .registry import Cost, Spec

DEFAULT_FLOAT = np.dtype(np.float32)  # what Python floats and integer true division become


def _category(dtype: np.dtype) -> int:
    """PyTorch's dtype categories, lowest first: bool, integer, floating point, complex."""
    return {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}[np.dtype(dtype).kind]


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's ``promote_types``: within a category numpy's rule; across categories the higher
    category's type (``int64`` and ``float32`` give ``float32``, where numpy says ``float64``)."""
    ca, cb = _category(a), _category(b)
    if ca == cb:
        return np.promote_types(a, b)
    return np.dtype(a if ca > cb else b)


def result_dtype(*specs: Spec) -> np.dtype:
    """The dtype PyTorch gives an op on these operands.

    Operands with dimensions decide; a zero-dimensional operand (a tensor of shape ``()``, or a
    Python number the Tensor lifted) counts only when its category is higher: ``float32[3] +
    float64[]`` is ``float32``, ``int64[3] * 2.5`` is the default float type.
    """
    dims = [s.dtype for s in specs if s.shape != ()]
    zeros = [s.dtype for s in specs if s.shape == ()]
    ranked = functools.reduce(promote_types, dims) if dims else None
    scalar = functools.reduce(promote_types, zeros) if zeros else None
    if ranked is None:
        return np.dtype(scalar)
    if scalar is None or _category(scalar) <= _category(ranked):
        return np.dtype(ranked)
    return promote_types(ranked, scalar)


def broadcast_shape(name: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcasting result, or an error naming the op and every shape involved."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{name}: shapes {listed} cannot be broadcast together") from None


def broadcast_spec(name: str, *specs: Spec) -> Spec:
    """Output spec of an elementwise op: broadcast shape, PyTorch's promoted dtype."""
    shape = broadcast_shape(name, *(s.shape for s in specs))
    return Spec(shape, result_dtype(*specs))


def same_spec(name: str, x: Spec) -> Spec:
    return x


def elementwise_cost(flops_per_element: int) -> Callable[..., Cost]:
    """Cost of an op that reads every input once and writes its output once."""

    def cost(*specs: Spec, out: Spec, **params: object) -> Cost:
        moved = sum(s.nbytes for s in specs) + out.nbytes
        return Cost(flops_per_element * out.size, moved)

    return cost


def copy_cost(*specs: Spec, out: Spec, **params: object) -> Cost:
    """Data movement only: read inputs, write the output, no arithmetic."""
    return Cost(0, sum(s.nbytes for s in specs) + out.nbytes)


def view_cost(*specs: Spec, out: Spec, **params: object) -> Cost:
    """A view (reshape of a contiguous array) moves nothing."""
    return Cost(0, 0)


def normalize_axes(axis: int | Sequence[int] | None, ndim: int, name: str) -> tuple[int, ...] | None:
    """Canonical form of an ``axis`` argument: ``None`` or a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"{name}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{name}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: axis {axis!r} repeats a dimension")
    return tuple(sorted(out))


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdims: bool):
    """Shape after reducing ``axes`` (all axes when ``None``)."""
    axes = tuple(range(len(shape))) if axes is None else axes
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def require_float(name: str, spec: Spec) -> None:
    if not np.issubdtype(spec.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {spec.dtype} "
                        f"(convert it first, e.g. x.float())")


def require_integer(name: str, what: str, spec: Spec) -> None:
    if not np.issubdtype(spec.dtype, np.integer):
        raise TypeError(f"{name}: {what} must be integers, got dtype {spec.dtype}")


def check_axis(name: str, axis: int, shape: tuple[int, ...]) -> None:
    """A canonical (non-negative) axis of ``shape``, or an error naming both."""
    if not 0 <= axis < len(shape):
        raise ValueError(f"{name}: axis {axis} is out of range for a tensor of shape {shape}")
