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


def _column_major(x) -> bool:
    """Whether ``x`` is a matrix laid out column by column (a transposed view, as ``W.T``)."""
    data = x._data
    return (type(data) is np.ndarray and data.ndim == 2 and data.flags.f_contiguous
            and not data.flags.c_contiguous)


def _matmul_vjp(g, out, a, b):
    # Each gradient is computed in its input's layout, as PyTorch's mm backward does: the weight
    # of ``x @ W.T`` gets ``(g.T @ x).T``, whose transpose (W's gradient) is contiguous like W, so
    # the optimizer's arithmetic on it runs on contiguous memory rather than strided.
    ga = gb = None
    if a.requires_grad:
        ga = _swap_last(matmul(b, _swap_last(g))) if _column_major(a) else matmul(g, _swap_last(b))
        ga = unbroadcast(ga, a.shape)
    if b.requires_grad:
        gb = _swap_last(matmul(_swap_last(g), a)) if _column_major(b) else matmul(_swap_last(a), g)
        gb = unbroadcast(gb, b.shape)
    return ga, gb


matmul = register(Primitive(
    "matmul", forward=np.matmul, shape=_matmul_shape, cost=_matmul_cost, vjp=_matmul_vjp, arity=2,
    doc="a @ b over the last two dimensions, batch dimensions broadcast"))
