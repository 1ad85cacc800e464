"""Movement and indexing: reshape, permute, broadcast_to, sum_to, getitem, take, concatenate."""

from __future__ import annotations

import numpy as np

from ._rules import broadcast_shape, copy_cost, view_cost
from .registry import Cost, Primitive, Spec, register


def _reshape_shape(x: Spec, *, shape: tuple[int, ...]) -> Spec:
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into shape {shape}")
    return Spec(tuple(shape), x.dtype)


reshape = register(Primitive(
    "reshape",
    forward=lambda x, *, shape: np.reshape(x, shape),
    shape=_reshape_shape,
    cost=view_cost,
    vjp=lambda g, out, x, *, shape: (reshape(g, shape=x.shape),),
    doc="View the data with a new shape of the same size.",
))


def _permute_shape(x: Spec, *, axes: tuple[int, ...]) -> Spec:
    if sorted(axes) != list(range(len(x.shape))):
        raise ValueError(f"permute: axes {axes} are not a permutation of the {len(x.shape)} "
                         f"dimensions of a tensor of shape {x.shape}")
    return Spec(tuple(x.shape[a] for a in axes), x.dtype)


permute = register(Primitive(
    "permute",
    forward=lambda x, *, axes: np.transpose(x, axes),
    shape=_permute_shape,
    cost=copy_cost,
    vjp=lambda g, out, x, *, axes: (permute(g, axes=tuple(np.argsort(axes).tolist())),),
    doc="Reorder dimensions (transpose generalised).",
))


def _broadcast_to_shape(x: Spec, *, shape: tuple[int, ...]) -> Spec:
    if broadcast_shape("broadcast_to", x.shape, shape) != tuple(shape):
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return Spec(tuple(shape), x.dtype)


def _sum_to_forward(x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
    out = x.sum(axis=axes, keepdims=True) if axes else x
    return out.reshape(shape) if lead or out.shape != tuple(shape) else out


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
    doc="Repeat along broadcast dimensions (a view).",
))

sum_to = register(Primitive(
    "sum_to",
    forward=_sum_to_forward,
    shape=_sum_to_shape,
    cost=lambda x, *, out, shape: Cost(x.size, x.nbytes + out.nbytes),
    vjp=lambda g, out, x, *, shape: (broadcast_to(g, shape=x.shape),),
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
    doc="numpy indexing with a static index: slices, ints, None, Ellipsis, int and bool arrays.",
))

scatter_add = register(Primitive(
    "scatter_add",
    forward=_scatter_add_forward,
    shape=lambda g, *, index, shape: Spec(tuple(shape), g.dtype),
    cost=lambda g, *, out, index, shape: Cost(g.size, g.nbytes + 2 * out.nbytes),
    vjp=lambda g, out, x, *, index, shape: (getitem(g, index=index),),
    doc="Zeros of `shape` with `g` added at `index` (repeated positions accumulate).",
))


def _take_shape(x: Spec, idx: Spec, *, axis: int) -> Spec:
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"take: indices must be integers, got dtype {idx.dtype}")
    if not 0 <= axis < len(x.shape):
        raise ValueError(f"take: axis {axis} is out of range for a tensor of shape {x.shape}")
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
    doc="Select entries along `axis` by an integer index tensor (embedding lookup).",
))

put_add = register(Primitive(
    "put_add",
    forward=_put_add_forward,
    shape=lambda g, idx, *, axis, size: Spec(
        g.shape[:axis] + (size,) + g.shape[axis + len(idx.shape):], g.dtype),
    cost=lambda g, idx, *, out, axis, size: Cost(g.size, g.nbytes + idx.nbytes + 2 * out.nbytes),
    vjp=lambda g, out, x, idx, *, axis, size: (take(g, idx, axis=axis), None),
    doc="Adjoint of take: add rows of `g` into zeros at the indexed positions.",
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
    return Spec(shape, np.result_type(*(s.dtype for s in xs)))


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
