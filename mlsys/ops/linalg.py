"""Batched matrix multiplication."""

from __future__ import annotations

import functools

import numpy as np

from ._rules import broadcast_shape
from .registry import Cost, Primitive, Spec, register
from .shape import permute, unbroadcast


def _matmul_shape(a: Spec, b: Spec) -> Spec:
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ValueError(f"matmul: the primitive needs at least 2-D operands, got {a.shape} @ {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    if np.dtype(a.dtype) != np.dtype(b.dtype):
        raise TypeError(f"matmul: operands must have the same dtype, got {a.dtype} and {b.dtype}")
    batch = broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
    return Spec(batch + (a.shape[-2], b.shape[-1]), a.dtype)


def _matmul_cost(a: Spec, b: Spec, *, out: Spec) -> Cost:
    k = a.shape[-1]
    return Cost(2 * out.size * k, a.nbytes + b.nbytes + out.nbytes)


@functools.lru_cache(maxsize=64)
def _swapped(ndim: int) -> tuple[int, ...]:
    return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)


def _swap_last(x):
    return permute(x, axes=_swapped(x.ndim))


def _matmul_vjp(g, out, a, b):
    ga = unbroadcast(matmul(g, _swap_last(b)), a.shape) if a.requires_grad else None
    gb = unbroadcast(matmul(_swap_last(a), g), b.shape) if b.requires_grad else None
    return ga, gb


matmul = register(Primitive(
    "matmul", forward=np.matmul, shape=_matmul_shape, cost=_matmul_cost, vjp=_matmul_vjp, arity=2,
    doc="a @ b over the last two dimensions, batch dimensions broadcast"))
