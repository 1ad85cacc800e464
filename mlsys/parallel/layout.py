"""Hybrid layouts: a group's ranks arranged as a tensor x data x pipeline grid, with sub-groups.

Ranks are numbered tensor-parallel fastest, then data-parallel, then pipeline (Megatron-LM's
order, the one ``simulators.training.Cluster`` assumes), so that a tensor-parallel group is made
of neighbouring ranks: with ``tp=2, dp=2`` ranks 0 and 1 split one replica, 2 and 3 the other,
and ranks 0 and 2 (1 and 3) average their gradients. :func:`layout` makes this rank's three
sub-groups (:meth:`mlsys.comm.ProcessGroup.subgroup`); every rank calls it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..comm.ddp import DEFAULT_BUCKET_BYTES, flatten, make_buckets
from ..comm.group import ProcessGroup
from ..nn.module import Parameter

__all__ = ["Layout", "layout", "average_gradients"]


@dataclass(frozen=True)
class Layout:
    """This rank's place in a ``tp x dp x pp`` grid and its three groups."""

    tp: ProcessGroup
    dp: ProcessGroup
    pp: ProcessGroup

    @property
    def coordinates(self) -> tuple[int, int, int]:
        """(tensor, data, pipeline) index of this rank."""
        return self.tp.rank, self.dp.rank, self.pp.rank


def layout(group: ProcessGroup, tp: int = 1, dp: int = 1, pp: int = 1) -> Layout:
    """The sub-groups of this rank when ``group`` is arranged as ``tp x dp x pp``."""
    for name, size in (("tp", tp), ("dp", dp), ("pp", pp)):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"layout: {name} must be a positive integer, got {size!r}")
    if tp * dp * pp != group.world_size:
        raise ValueError(f"layout: tp*dp*pp = {tp}*{dp}*{pp} = {tp * dp * pp} must equal the "
                         f"group's {group.world_size} ranks")
    r = group.rank
    t, d, p = r % tp, (r // tp) % dp, r // (tp * dp)
    rank = lambda t_, d_, p_: p_ * tp * dp + d_ * tp + t_  # noqa: E731
    return Layout(tp=group.subgroup([rank(k, d, p) for k in range(tp)]),
                  dp=group.subgroup([rank(t, k, p) for k in range(dp)]),
                  pp=group.subgroup([rank(t, d, k) for k in range(pp)]))


def average_gradients(params: Iterable[Parameter], group: ProcessGroup,
                      bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
    """Average every parameter's ``.grad`` over ``group``, in DDP's buckets, after backward (a
    pipeline's gradients are complete only once its last micro-batch has gone back)."""
    if group.world_size == 1:
        return
    for bucket in make_buckets([p for p in params if p.grad is not None], bucket_bytes):
        flat = flatten([p.grad.data for p in bucket])
        group.all_reduce(flat, op="mean")
        offset = 0
        for p in bucket:
            size = p.grad.data.size
            p.grad.data[...] = flat[offset: offset + size].reshape(p.grad.shape)
            offset += size
