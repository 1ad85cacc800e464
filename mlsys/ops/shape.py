"""Movement and indexing: reshape, permute, broadcast_to, sum_to, getitem and setitem, take and
gather (with their adjoints), concatenate and pad."""

from __future__ import annotations

import functools

import numpy as np

from ._rules import broadcast_shape, check_axis, copy_cost, require_integer, result_dtype, view_cost
from .registry import Algebra, Cost, Primitive, Spec, register

_same_shape = Algebra(noop=lambda x, *, shape: tuple(shape) == x.shape,
                      compose=lambda inner, outer: dict(outer))


def _reshape_shape(x: Spec, *, shape: tuple[int, ...]) -> Spec:
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into shape {shape}")
    return Spec(tuple(shape), x.dtype)


reshape = register(Primitive(
    "reshape",
    forward=lambda x, *, shape: x.reshape(shape),
    shape=_reshape_shape,
    cost=view_cost,
    vjp=lambda g, out, x, *, shape: (reshape(g, shape=x.shape),),
    arity=1, view=True, algebra=_same_shape,
    doc="View the data with a new shape of the same size.",
))


def _permute_shape(x: Spec, *, axes: tuple[int, ...]) -> Spec:
    if sorted(axes) != list(range(len(x.shape))):
        raise ValueError(f"permute: axes {axes} are not a permutation of the {len(x.shape)} "
                         f"dimensions of a tensor of shape {x.shape}")
    return Spec(tuple(x.shape[a] for a in axes), x.dtype)


@functools.lru_cache(maxsize=1024)  # permute's VJP asks for the same few on every backward
def _inverse(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(axes)), key=axes.__getitem__))


permute = register(Primitive(
    "permute",
    forward=lambda x, *, axes: x.transpose(axes),
    shape=_permute_shape,
    cost=copy_cost,
    vjp=lambda g, out, x, *, axes: (permute(g, axes=_inverse(axes)),),
    arity=1, view=True,
    algebra=Algebra(noop=lambda x, *, axes: tuple(axes) == tuple(range(len(axes))),
                    compose=lambda inner, outer: {"axes": tuple(inner["axes"][i] for i in outer["axes"])}),
    doc="Reorder dimensions (transpose generalised).",
))


def _broadcast_to_shape(x: Spec, *, shape: tuple[int, ...]) -> Spec:
    if broadcast_shape("broadcast_to", x.shape, shape) != tuple(shape):
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return Spec(tuple(shape), x.dtype)


@functools.lru_cache(maxsize=4096)
def _summed_axes(full: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of ``full`` that ``sum_to`` adds up to reach ``shape``."""
    lead = len(full) - len(shape)
    return tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and full[lead + i] != 1)


def _sum_to_forward(x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
    axes = _summed_axes(x.shape, tuple(shape))
    if not axes:
        return x
    out = np.add.reduce(x, axis=axes, keepdims=len(shape) == x.ndim)
    return out if out.shape == tuple(shape) else out.reshape(shape)


def _sum_to_shape(x: Spec, *, shape: tuple[int, ...]) -> Spec:
    if broadcast_shape("sum_to", x.shape, shape) != x.shape:
        raise ValueError(f"sum_to: shape {x.shape} does not broadcast from {shape}")
    return Spec(tuple(shape), x.dtype)


broadcast_to = register(Primitive(
    "broadcast_to",
    forward=lambda x, *, shape: np.broadcast_to(x, shape),
    shape=_broadcast_to_shape,
    cost=view_cost,
    vjp=lambda g, out, x, *, shape: (sum_to(g, shape=x.shape),),
    arity=1, view=True, algebra=_same_shape,
    doc="Repeat along broadcast dimensions (a view).",
))

sum_to = register(Primitive(
    "sum_to",
    forward=_sum_to_forward,
    shape=_sum_to_shape,
    cost=lambda x, *, out, shape: Cost(x.size, x.nbytes + out.nbytes),
    vjp=lambda g, out, x, *, shape: (broadcast_to(g, shape=x.shape),),
    arity=1, algebra=Algebra(noop=lambda x, *, shape: tuple(shape) == x.shape),
    doc="Sum over broadcast dimensions down to `shape` (the adjoint of broadcast_to).",
))


def unbroadcast(g, shape: tuple[int, ...]):
    """Reduce a cotangent to ``shape`` when its input was broadcast (no-op otherwise)."""
    return g if g.shape == tuple(shape) else sum_to(g, shape=tuple(shape))


class Index:
    """A hashable, printable wrapper for a numpy index expression (slices, ints, arrays)."""

    __slots__ = ("key", "_hash")

    def __init__(self, key: tuple) -> None:
        self.key = key
        self._hash = hash(tuple(_hashable(k) for k in key))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Index) and self._hash == other._hash
                and all(_same(a, b) for a, b in zip(self.key, other.key))
                and len(self.key) == len(other.key))

    def __repr__(self) -> str:
        return "[" + ", ".join(_show(k) for k in self.key) + "]"


def _hashable(k):
    if isinstance(k, np.ndarray):
        return ("array", k.dtype.str, k.shape, k.tobytes())
    if isinstance(k, slice):
        return ("slice", k.start, k.stop, k.step)
    return k


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and a.shape == b.shape and bool(np.all(a == b)))
    return _hashable(a) == _hashable(b)


def _show(k) -> str:
    if isinstance(k, slice):
        parts = ["" if v is None else str(v) for v in (k.start, k.stop, k.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if k.step is not None else "")
    if isinstance(k, np.ndarray):
        return f"<{k.dtype} array {k.shape}>"
    return "..." if k is Ellipsis else repr(k)


def _getitem_shape(x: Spec, *, index: Index) -> Spec:
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=x.dtype), x.shape, [0] * len(x.shape))
    try:
        return Spec(probe[index.key].shape, x.dtype)
    except IndexError as e:
        raise IndexError(f"getitem: index {index} is invalid for a tensor of shape {x.shape}: {e}") from None


def _scatter_add_forward(g: np.ndarray, *, index: Index, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, index.key, g)
    return out


getitem = register(Primitive(
    "getitem",
    forward=lambda x, *, index: x[index.key],
    shape=_getitem_shape,
    cost=copy_cost,
    vjp=lambda g, out, x, *, index: (scatter_add(g, index=index, shape=x.shape),),
    arity=1, view=True,
    doc="numpy indexing with a static index: slices, ints, None, Ellipsis, int and bool arrays "
        "(a view for basic indexing).",
))

scatter_add = register(Primitive(
    "scatter_add",
    forward=_scatter_add_forward,
    shape=lambda g, *, index, shape: Spec(tuple(shape), g.dtype),
    cost=lambda g, *, out, index, shape: Cost(g.size, g.nbytes + 2 * out.nbytes),
    vjp=lambda g, out, x, *, index, shape: (getitem(g, index=index),),
    arity=1, doc="Zeros of `shape` with `g` added at `index` (repeated positions accumulate).",
))


def _take_shape(x: Spec, idx: Spec, *, axis: int) -> Spec:
    require_integer("take", "indices", idx)
    check_axis("take", axis, x.shape)
    return Spec(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)


def _take_forward(x: np.ndarray, idx: np.ndarray, *, axis: int) -> np.ndarray:
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)].flat[0]
        raise IndexError(f"take: index {bad} is out of range for dimension {axis} of size {n}")
    return np.take(x, idx, axis=axis)


def _put_add_forward(g: np.ndarray, idx: np.ndarray, *, axis: int, size: int) -> np.ndarray:
    flat = g.reshape(g.shape[:axis] + (idx.size,) + g.shape[axis + idx.ndim:])
    out = np.zeros(flat.shape[:axis] + (size,) + flat.shape[axis + 1:], dtype=g.dtype)
    np.add.at(np.moveaxis(out, axis, 0), idx.ravel(), np.moveaxis(flat, axis, 0))
    return out


take = register(Primitive(
    "take",
    forward=_take_forward,
    shape=_take_shape,
    cost=copy_cost,
    vjp=lambda g, out, x, idx, *, axis: (put_add(g, idx, axis=axis, size=x.shape[axis]), None),
    arity=2, doc="Select entries along `axis` by an integer index tensor (embedding lookup).",
))

put_add = register(Primitive(
    "put_add",
    forward=_put_add_forward,
    shape=lambda g, idx, *, axis, size: Spec(
        g.shape[:axis] + (size,) + g.shape[axis + len(idx.shape):], g.dtype),
    cost=lambda g, idx, *, out, axis, size: Cost(g.size, g.nbytes + idx.nbytes + 2 * out.nbytes),
    vjp=lambda g, out, x, idx, *, axis, size: (take(g, idx, axis=axis), None),
    arity=2, doc="Adjoint of take: add rows of `g` into zeros at the indexed positions.",
))


def _concat_shape(*xs: Spec, axis: int) -> Spec:
    first = xs[0]
    for s in xs[1:]:
        if len(s.shape) != len(first.shape) or any(
                a != b for i, (a, b) in enumerate(zip(s.shape, first.shape)) if i != axis):
            raise ValueError(f"concatenate: shapes {first.shape} and {s.shape} differ outside "
                             f"axis {axis}")
    size = sum(s.shape[axis] for s in xs)
    shape = first.shape[:axis] + (size,) + first.shape[axis + 1:]
    return Spec(shape, result_dtype(*xs))


def _concat_vjp(g, out, *xs, axis: int):
    grads, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        key = (slice(None),) * axis + (slice(start, stop),)
        grads.append(getitem(g, index=Index(key)))
        start = stop
    return tuple(grads)


concatenate = register(Primitive(
    "concatenate",
    forward=lambda *xs, axis: np.concatenate(xs, axis=axis),
    shape=_concat_shape,
    cost=copy_cost,
    vjp=_concat_vjp,
    doc="Join tensors along an existing axis.",
))


def _setitem_shape(x: Spec, v: Spec, *, index: Index) -> Spec:
    target = _getitem_shape(x, index=index).shape
    if broadcast_shape("setitem", v.shape, target) != target:
        raise ValueError(f"setitem: a value of shape {v.shape} does not fit x{index}, of shape {target}")
    return x


def _setitem_forward(x: np.ndarray, v: np.ndarray, *, index: Index) -> np.ndarray:
    out = x.copy()
    out[index.key] = v
    return out


def _setitem_vjp(g, out, x, v, *, index):
    zero = g.new_constant(np.zeros((), g.dtype))
    return (setitem(g, zero, index=index) if x.requires_grad else None,
            unbroadcast(getitem(g, index=index), v.shape) if v.requires_grad else None)


setitem = register(Primitive(
    "setitem",
    forward=_setitem_forward,
    shape=_setitem_shape,
    cost=lambda x, v, *, out, index: Cost(0, x.nbytes + v.nbytes + out.nbytes),
    vjp=_setitem_vjp,
    arity=2, doc="x with `v` written at `index` (Tensor.__setitem__, out of place).",
))


def _gather_shape(x: Spec, idx: Spec, *, axis: int) -> Spec:
    require_integer("gather", "indices", idx)
    check_axis("gather", axis, x.shape)
    if len(idx.shape) != len(x.shape) or any(
            m > n for d, (m, n) in enumerate(zip(idx.shape, x.shape)) if d != axis):
        raise ValueError(f"gather: index of shape {idx.shape} does not fit input of shape {x.shape} "
                         f"(same number of dimensions, no larger outside axis {axis})")
    return Spec(idx.shape, x.dtype)


def _along(idx: np.ndarray, axis: int) -> tuple:
    """The full numpy index that picks ``idx`` along ``axis`` and runs over every other axis."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return tuple(grid)


def _gather_forward(x: np.ndarray, idx: np.ndarray, *, axis: int) -> np.ndarray:
    n = x.shape[axis]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"gather: index {bad} is out of range for dimension {axis} of size {n}")
    return x[_along(idx, axis)]


def _put_along_add_forward(g: np.ndarray, idx: np.ndarray, *, axis: int,
                           shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, _along(idx, axis), g)
    return out


gather = register(Primitive(
    "gather",
    forward=_gather_forward,
    shape=_gather_shape,
    cost=copy_cost,
    vjp=lambda g, out, x, idx, *, axis: (put_along_add(g, idx, axis=axis, shape=x.shape), None),
    arity=2, doc="out[i][j][k] = x[i][idx[i][j][k]][k] along `axis` (PyTorch's gather).",
))

put_along_add = register(Primitive(
    "put_along_add",
    forward=_put_along_add_forward,
    shape=lambda g, idx, *, axis, shape: Spec(tuple(shape), g.dtype),
    cost=lambda g, idx, *, out, axis, shape: Cost(g.size, g.nbytes + idx.nbytes + 2 * out.nbytes),
    vjp=lambda g, out, x, idx, *, axis, shape: (gather(g, idx, axis=axis), None),
    arity=2, doc="Adjoint of gather: zeros of `shape` with `g` added at the gathered positions.",
))


def _pad_shape(x: Spec, *, widths: tuple[tuple[int, int], ...], value: float) -> Spec:
    if len(widths) != len(x.shape) or any(b < 0 or a < 0 for b, a in widths):
        raise ValueError(f"pad: expected one non-negative (before, after) pair per dimension of "
                         f"shape {x.shape}, got {widths}")
    return Spec(tuple(n + b + a for n, (b, a) in zip(x.shape, widths)), x.dtype)


pad = register(Primitive(
    "pad",
    forward=lambda x, *, widths, value: np.pad(x, widths, constant_values=value),
    shape=_pad_shape,
    cost=copy_cost,
    vjp=lambda g, out, x, *, widths, value: (getitem(g, index=Index(tuple(
        slice(b, b + n) for n, (b, _) in zip(x.shape, widths)))),),
    arity=1, algebra=Algebra(noop=lambda x, *, widths, value: not any(map(any, widths))),
    doc="Surround with `value`: `widths` holds (before, after) per dimension.",
))
