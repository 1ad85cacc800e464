"""Reductions over axes (sum, mean, prod, max, min, argmax, argmin) and the scans and orderings
built like them (cumsum, argsort).

Sums and products of integers are ``int64`` and ``mean`` needs floating point, as in PyTorch.
``max``/``min`` over axes share the gradient equally among tied extrema (PyTorch's ``amax``);
``Tensor.max(dim)`` instead returns indices and routes the gradient through them (``gather``).
"""

from __future__ import annotations

import numpy as np

from ._rules import reduced_shape, require_float
from .elementwise import add, cast, constant, div, equal, mul, not_equal, sub, where
from .registry import Cost, Primitive, Reduction, Spec, register
from .shape import Index, broadcast_to, getitem, reshape

_MAX = "({0} if ({0} >= {1} or {0} != {0}) else {1})"  # NaN-propagating, as np.max
_MIN = "({0} if ({0} <= {1} or {0} != {0}) else {1})"


def _reduce_shape(name, dtype_rule=None, needs_elements=False):
    def shape(x: Spec, *, axis, keepdims: bool) -> Spec:
        for a in axis or ():
            if not 0 <= a < len(x.shape):
                raise ValueError(f"{name}: axis {a} is out of range for a tensor of shape {x.shape}")
        reduced = range(len(x.shape)) if axis is None else axis
        if needs_elements and any(x.shape[a] == 0 for a in reduced):
            raise ValueError(f"{name}: cannot reduce over an empty dimension of a tensor of shape "
                             f"{x.shape} (the result has no identity)")
        dtype = dtype_rule(name, x.dtype) if dtype_rule else x.dtype
        return Spec(reduced_shape(x.shape, axis, keepdims), dtype)

    return shape


def _widen_integers(name: str, dtype: np.dtype) -> np.dtype:
    """Sums and products of bools and integers are int64, as in PyTorch."""
    return np.dtype(np.int64) if dtype.kind in "biu" else dtype


def _floats_only(name: str, dtype: np.dtype) -> np.dtype:
    require_float(name, Spec((), dtype))
    return dtype


def _reduce_cost(x: Spec, *, out: Spec, **params) -> Cost:
    return Cost(x.size, x.nbytes + out.nbytes)


def _expand(g, x, axis, keepdims):
    """Bring a reduced cotangent back to the input's shape."""
    if not keepdims:
        g = reshape(g, shape=reduced_shape(x.shape, axis, True))
    return broadcast_to(g, shape=x.shape)


def _count(x, axis) -> int:
    return int(np.prod(x.shape)) if axis is None else int(np.prod([x.shape[a] for a in axis]))


def _reduction(name, forward, vjp, reduction, dtype_rule=None, needs_elements=False, doc=""):
    return register(Primitive(
        name, forward=lambda x, *, axis, keepdims: forward(x, axis=axis, keepdims=keepdims),
        shape=_reduce_shape(name, dtype_rule, needs_elements), cost=_reduce_cost, vjp=vjp,
        arity=1, reduction=reduction, doc=doc))


def _sum_forward(x: np.ndarray, *, axis, keepdims: bool) -> np.ndarray:
    if x.dtype.kind == "f":  # np.sum without its Python wrapper
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims, dtype=np.int64)


sum = _reduction(
    "sum", _sum_forward, lambda g, out, x, *, axis, keepdims: (_expand(g, x, axis, keepdims),),
    Reduction(0.0, "({0} + {1})"), _widen_integers, doc="sum over `axis` (all axes when None)")

mean = _reduction(
    "mean", np.mean,
    lambda g, out, x, *, axis, keepdims: (
        _expand(mul(g, constant(g, 1.0 / _count(x, axis) if _count(x, axis) else np.nan)), x, axis,
                keepdims),),
    Reduction(0.0, "({0} + {1})", mean=True), _floats_only,
    doc="mean over `axis` (all axes when None); floating point only, as in PyTorch")


def _extremum_vjp(g, out, x, *, axis, keepdims):
    """Tied extrema (NaN counts as tied with a NaN result) share the gradient equally."""
    peak = _expand(out, x, axis, keepdims)
    both_nan = mul(not_equal(x, x), not_equal(peak, peak))
    winners = add(cast(equal(x, peak), dtype=x.dtype), cast(both_nan, dtype=x.dtype))
    ties = sum(winners, axis=axis, keepdims=True)
    return (mul(div(_expand(g, x, axis, keepdims), ties), winners),)


max = _reduction("max", np.max, _extremum_vjp, Reduction(-np.inf, _MAX), needs_elements=True,
                 doc="maximum over `axis` (NaN wins); tied maxima share the gradient equally")
min = _reduction("min", np.min, _extremum_vjp, Reduction(np.inf, _MIN), needs_elements=True,
                 doc="minimum over `axis` (NaN wins); tied minima share the gradient equally")


def _prod_vjp(g, out, x, *, axis, keepdims):
    """d prod / dx_j is the product of the other entries, computed without dividing by a zero.

    With ``p`` the product of the non-zero entries, ``z`` that of the zero ones and ``s`` their
    sum (all three 0 in value when a zero is present, yet with the right derivatives): at a zero
    entry it is ``p`` when that zero is alone, ``p * (s - x_j)`` (the other zero) when there are
    two, else 0; elsewhere ``p * z / x_j``. Exact through second derivatives.
    """
    zero, one = constant(x, 0), constant(x, 1)
    is_zero = equal(x, zero)
    nonzero = where(is_zero, one, x)
    p = prod(nonzero, axis=axis, keepdims=True)
    z = prod(where(is_zero, x, one), axis=axis, keepdims=True)
    s = sum(where(is_zero, x, zero), axis=axis, keepdims=True)
    count = sum(cast(is_zero, dtype=x.dtype), axis=axis, keepdims=True)
    at_zero = where(equal(count, one), p,
                    where(equal(count, constant(x, 2)), mul(p, sub(s, x)), zero))
    others = where(is_zero, at_zero, div(mul(p, z), nonzero))
    return (mul(_expand(g, x, axis, keepdims), others),)


prod = _reduction("prod", np.prod, _prod_vjp, Reduction(1.0, "({0} * {1})"), _widen_integers,
                  doc="product over `axis` (all axes when None); exact gradients at zeros")


def _arg_shape(name):
    rule = _reduce_shape(name, needs_elements=True)

    def shape(x: Spec, *, axis, keepdims: bool) -> Spec:
        if axis is not None and len(axis) != 1:
            raise ValueError(f"{name}: reduces over one axis or all of them, got axis={axis}")
        return Spec(rule(x, axis=axis, keepdims=keepdims).shape, np.dtype(np.int64))

    return shape


def _arg(name, pick):
    def forward(x, *, axis, keepdims):
        return pick(x, axis=None if axis is None else axis[0], keepdims=keepdims).astype(np.int64)

    return register(Primitive(name, forward=forward, shape=_arg_shape(name), cost=_reduce_cost,
                              arity=1, doc=f"index of the {name[3:]}imum (not differentiable)"))


argmax = _arg("argmax", np.argmax)
argmin = _arg("argmin", np.argmin)


def _flip(g, axis: int):
    return getitem(g, index=Index((slice(None),) * axis + (slice(None, None, -1),)))


def _scan_shape(name):
    def shape(x: Spec, *, axis: int) -> Spec:
        if not 0 <= axis < (len(x.shape) or 1):
            raise ValueError(f"{name}: axis {axis} is out of range for a tensor of shape {x.shape}")
        return Spec(x.shape, _widen_integers(name, x.dtype))

    return shape


cumsum = register(Primitive(
    "cumsum", forward=lambda x, *, axis: np.cumsum(x, axis=axis) if x.ndim else x.copy(),
    shape=_scan_shape("cumsum"), cost=lambda x, *, out, axis: Cost(x.size, x.nbytes + out.nbytes),
    vjp=lambda g, out, x, *, axis: (_flip(cumsum(_flip(g, axis), axis=axis), axis),),
    arity=1, doc="running sum along `axis`"))


def _argsort_forward(x: np.ndarray, *, axis: int, descending: bool) -> np.ndarray:
    """Stable order of the entries along ``axis``; NaN sorts as the largest value (PyTorch's)."""
    if x.ndim == 0:
        return np.zeros((), np.int64)
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # stable descending: sort the reversed axis ascending, reverse back, map the positions
    backwards = np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    return x.shape[axis] - 1 - backwards


def _argsort_cost(x: Spec, *, out: Spec, axis: int, descending: bool) -> Cost:
    n = x.shape[axis] if x.shape else 1
    return Cost(int(x.size * np.log2(n if n > 2 else 2)), x.nbytes + out.nbytes)


argsort = register(Primitive(
    "argsort", forward=_argsort_forward,
    shape=lambda x, *, axis, descending: Spec(_scan_shape("argsort")(x, axis=axis).shape,
                                              np.dtype(np.int64)),
    cost=_argsort_cost, arity=1,
    doc="indices that sort `axis` (stable; NaN largest); values come from gather (not differentiable)"))
