"""Shared shape and cost rules, so each op module states only what is particular to it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .registry import Cost, Spec


def broadcast_shape(name: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcasting result, or an error naming the op and every shape involved."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{name}: shapes {listed} cannot be broadcast together") from None


def broadcast_spec(name: str, *specs: Spec) -> Spec:
    """Output spec of an elementwise op: broadcast shape, numpy's promoted dtype."""
    shape = broadcast_shape(name, *(s.shape for s in specs))
    return Spec(shape, np.result_type(*(s.dtype for s in specs)))


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
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {spec.dtype}")
