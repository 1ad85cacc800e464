"""Communication as differentiable operations: Megatron-LM's conjugate pairs over a process group.

Tensor parallelism (Shoeybi et al., "Megatron-LM", 2019, section 3) needs two operators that are
each other's transpose:

* ``f`` = :func:`copy_to_group`: the identity in the forward pass, an all-reduce (sum) of the
  gradient in the backward pass. It enters a column-parallel layer: every rank reads the whole
  input, so the input's gradient is the sum of every rank's contribution.
* ``g`` = :func:`reduce_from_group`: an all-reduce in the forward pass, the identity in the
  backward pass. It leaves a row-parallel layer: the output is the sum of the ranks' partial
  products, and each partial product's gradient is the output's.

and a second pair for splitting the last dimension: :func:`gather_from_group` (all-gather
forward, keep this rank's slice backward) and :func:`scatter_to_group` (keep this rank's slice
forward, all-gather backward). Each is a :class:`~mlsys.ops.Primitive` whose VJP is written with
the other, so the tape differentiates through communication like any other op.

They are not in the compute registry (:data:`mlsys.ops.PRIMITIVES`): their forward needs a
process group, so they cannot run on a backend alone, be traced into a compiled graph or be
costed as kernels; their cost rule gives the bytes each rank sends (ring algorithms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..comm.group import ProcessGroup
from ..ops import Cost, Primitive, Spec
from ..tensor import Tensor, apply

__all__ = ["copy_to_group", "reduce_from_group", "gather_from_group", "scatter_to_group",
           "shard_range"]


def shard_range(size: int, group: ProcessGroup, what: str = "dimension") -> tuple[int, int]:
    """This rank's ``[start, stop)`` of ``size`` items split evenly over ``group``."""
    t = group.world_size
    if size % t:
        raise ValueError(f"tensor parallelism: {what} {size} is not divisible by the group's "
                         f"{t} ranks")
    block = size // t
    return group.rank * block, (group.rank + 1) * block


def _ring_bytes(spec: Spec, group: ProcessGroup, phases: int) -> int:
    """Bytes each rank sends in ``phases`` ring phases (reduce-scatter, all-gather) of ``spec``."""
    p = group.world_size
    return phases * (p - 1) * spec.nbytes // p


def _same(x: Spec, **params: Any) -> Spec:
    return x


def _last_dim(x: Spec, *, group: ProcessGroup, scale: float) -> Spec:
    if not x.shape:
        raise ValueError("tensor parallelism: cannot split or gather a 0-d tensor")
    last = x.shape[-1] * scale
    if last != int(last):
        raise ValueError(f"tensor parallelism: last dimension {x.shape[-1]} is not divisible by "
                         f"the group's {group.world_size} ranks")
    return Spec((*x.shape[:-1], int(last)), x.dtype)


def _all_reduced(x: np.ndarray, *, group: ProcessGroup) -> np.ndarray:
    out = np.array(x, copy=True, order="C")
    group.all_reduce(out)
    return out


def _all_gathered(x: np.ndarray, *, group: ProcessGroup) -> np.ndarray:
    pieces = group.all_gather(np.ascontiguousarray(x))
    return np.concatenate(list(pieces), axis=-1)


def _own_slice(x: np.ndarray, *, group: ProcessGroup) -> np.ndarray:
    start, stop = shard_range(x.shape[-1], group, "last dimension")
    return np.array(x[..., start:stop], copy=True)


COPY = Primitive(
    "copy_to_group", forward=lambda x, *, group: x, shape=_same,
    cost=lambda x, *, out, group: Cost(0, 0),
    vjp=lambda g, out, x, *, group: (reduce_from_group(g, group),),
    doc="Megatron's f: identity forward, all-reduce of the gradient backward.")

REDUCE = Primitive(
    "reduce_from_group", forward=_all_reduced, shape=_same,
    cost=lambda x, *, out, group: Cost((group.world_size - 1) * x.size // group.world_size,
                                       _ring_bytes(x, group, 2)),
    vjp=lambda g, out, x, *, group: (copy_to_group(g, group),),
    doc="Megatron's g: all-reduce (sum) forward, identity backward.")

GATHER = Primitive(
    "gather_from_group", forward=_all_gathered,
    shape=lambda x, *, group: _last_dim(x, group=group, scale=group.world_size),
    cost=lambda x, *, out, group: Cost(0, _ring_bytes(out, group, 1)),
    vjp=lambda g, out, x, *, group: (scatter_to_group(g, group),),
    doc="All-gather along the last dimension forward; this rank's slice of the gradient backward.")

SCATTER = Primitive(
    "scatter_to_group", forward=_own_slice,
    shape=lambda x, *, group: _last_dim(x, group=group, scale=1 / group.world_size),
    cost=lambda x, *, out, group: Cost(0, 0),
    vjp=lambda g, out, x, *, group: (gather_from_group(g, group),),
    doc="This rank's slice of the last dimension forward; all-gather of the gradient backward.")


def copy_to_group(x: Tensor, group: ProcessGroup) -> Tensor:
    """``f``: ``x`` unchanged; backward all-reduces its gradient over ``group``."""
    return apply(COPY, x, group=group)


def reduce_from_group(x: Tensor, group: ProcessGroup) -> Tensor:
    """``g``: the sum of every rank's ``x``; backward passes the gradient through."""
    return apply(REDUCE, x, group=group)


def gather_from_group(x: Tensor, group: ProcessGroup) -> Tensor:
    """Every rank's ``x`` concatenated along the last dimension, in rank order."""
    return apply(GATHER, x, group=group)


def scatter_to_group(x: Tensor, group: ProcessGroup) -> Tensor:
    """This rank's block of ``x``'s last dimension (split evenly over ``group``)."""
    return apply(SCATTER, x, group=group)
