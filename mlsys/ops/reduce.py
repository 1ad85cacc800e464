"""Reductions over axes: sum, mean, max (with keepdims), and argmax."""

from __future__ import annotations

import numpy as np

from ._rules import reduced_shape
from .elementwise import cast, div, equal, mul
from .registry import Cost, Primitive, Spec, register
from .shape import broadcast_to, reshape


def _reduce_shape(name):
    def shape(x: Spec, *, axis, keepdims: bool) -> Spec:
        for a in axis or ():
            if not 0 <= a < len(x.shape):
                raise ValueError(f"{name}: axis {a} is out of range for a tensor of shape {x.shape}")
        dtype = np.dtype(np.int64) if x.dtype == np.dtype(bool) and name == "sum" else x.dtype
        return Spec(reduced_shape(x.shape, axis, keepdims), dtype)

    return shape


def _reduce_cost(x: Spec, *, out: Spec, **params) -> Cost:
    return Cost(x.size, x.nbytes + out.nbytes)


def _expand(g, x, axis, keepdims):
    """Bring a reduced cotangent back to the input's shape."""
    if not keepdims:
        g = reshape(g, shape=reduced_shape(x.shape, axis, True))
    return broadcast_to(g, shape=x.shape)


def _count(x, axis) -> int:
    return int(np.prod(x.shape)) if axis is None else int(np.prod([x.shape[a] for a in axis]))


sum = register(Primitive(
    "sum",
    forward=lambda x, *, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
    shape=_reduce_shape("sum"), cost=_reduce_cost,
    vjp=lambda g, out, x, *, axis, keepdims: (_expand(g, x, axis, keepdims),),
    doc="sum over `axis` (all axes when None)"))

mean = register(Primitive(
    "mean",
    forward=lambda x, *, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
    shape=_reduce_shape("mean"), cost=_reduce_cost,
    vjp=lambda g, out, x, *, axis, keepdims: (
        _expand(mul(g, g.new_constant(np.asarray(1.0 / _count(x, axis), g.dtype))), x, axis,
                keepdims),),
    doc="mean over `axis` (all axes when None)"))


def _max_vjp(g, out, x, *, axis, keepdims):
    winners = cast(equal(x, _expand(out, x, axis, keepdims)), dtype=x.dtype)
    ties = sum(winners, axis=axis, keepdims=True)
    share = div(_expand(g, x, axis, keepdims), broadcast_to(ties, shape=x.shape))
    return (mul(share, winners),)


max = register(Primitive(
    "max",
    forward=lambda x, *, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    shape=_reduce_shape("max"), cost=_reduce_cost, vjp=_max_vjp,
    doc="maximum over `axis`; tied maxima share the gradient equally"))


def _argmax_shape(x: Spec, *, axis, keepdims: bool) -> Spec:
    return Spec(_reduce_shape("argmax")(x, axis=axis, keepdims=keepdims).shape, np.dtype(np.int64))


def _argmax_forward(x, *, axis, keepdims):
    if axis is not None and len(axis) != 1:
        raise ValueError(f"argmax: reduces over one axis or all of them, got axis={axis}")
    return np.argmax(x, axis=None if axis is None else axis[0], keepdims=keepdims).astype(np.int64)


argmax = register(Primitive(
    "argmax", forward=_argmax_forward, shape=_argmax_shape, cost=_reduce_cost,
    doc="index of the maximum (not differentiable)"))
