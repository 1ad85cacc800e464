"""Process sub-groups: some ranks of a group, renumbered ``0..len(ranks)-1``, on its transport.

``group.subgroup([0, 2])`` on ranks 0 and 2 gives each a :class:`~mlsys.comm.ProcessGroup` of
two ranks whose point-to-point messages and collective schedules travel over the parent's
channels (so a hybrid layout's tensor- and data-parallel groups share one shared-memory segment).
A sub-group has no compiled all-reduce of its own: its collectives run the schedules of
:mod:`mlsys.comm.schedules`. Ranks agree on each call by exchanging their call signatures with
every other member (a member that is elsewhere fails with :class:`MismatchError`, as on the whole
group); a failure anywhere aborts the whole job, as it does on the parent.

Two groups that share a pair of ranks share that pair's channel, which delivers in order: both
ranks must use their groups in the same order (as with MPI communicators over one connection, or
NCCL communicators on one stream).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import MismatchError
from .transport import Reducer, Request, Transport, explain_mismatch, make_meta

SIGNATURE_BYTES = 256  # a call's signature, padded, so every agree message has the same shape


def check_ranks(ranks: Sequence[int], world_size: int, rank: int) -> tuple[int, ...]:
    """``ranks`` as a tuple after checking that they are distinct ranks including ``rank``."""
    ranks = tuple(ranks)
    if not ranks or any(not isinstance(r, (int, np.integer)) or isinstance(r, bool)
                        or not 0 <= r < world_size for r in ranks):
        raise ValueError(f"subgroup: ranks must be a non-empty list of ranks in [0, {world_size}), "
                         f"got {list(ranks)!r}")
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"subgroup: ranks must be distinct, got {list(ranks)!r}")
    if rank not in ranks:
        raise ValueError(f"subgroup: rank {rank} is not in {list(ranks)!r} (only members make "
                         "and use a sub-group)")
    return tuple(int(r) for r in ranks)


class SubTransport(Transport):
    """The ranks ``ranks`` of ``parent`` as a transport of their own (rank ``i`` is
    ``ranks[i]``)."""

    def __init__(self, parent: Transport, ranks: Sequence[int]) -> None:
        self.parent = parent
        self.ranks = check_ranks(ranks, parent.world_size, parent.rank)
        self.name = parent.name
        super().__init__(self.ranks.index(parent.rank), len(self.ranks), parent.timeout)

    def isend(self, dst: int, data: np.ndarray, meta: str) -> Request:
        self.check_peer(dst, "send")
        return self.parent.isend(self.ranks[dst], data, meta)

    def irecv(self, src: int, into: np.ndarray | None = None, reduce: Reducer | None = None,
              expect: str | None = None) -> Request:
        self.check_peer(src, "recv")
        return self.parent.irecv(self.ranks[src], into, reduce, expect)

    def poll(self, src: int) -> bool:
        return self.parent.poll(self.ranks[src])

    def wait_all(self, requests: Sequence[Request]) -> None:
        """The parent drives the requests (their peers are the parent's ranks)."""
        self.parent.wait_all(requests)

    def exited(self, peer: int) -> int | None:
        return self.parent.exited(self.ranks[peer])

    def abort(self, message: str) -> None:
        self.parent.abort(message)

    def aborted(self) -> str | None:
        return self.parent.aborted()

    def agree(self, signature: str) -> None:
        """Send this rank's signature to every other member and compare theirs with it."""
        mine = np.zeros(SIGNATURE_BYTES, np.uint8)
        raw = signature.encode()[:SIGNATURE_BYTES]
        mine[: len(raw)] = np.frombuffer(raw, np.uint8)
        meta = make_meta("agree", mine)
        peers = [r for r in range(self.world_size) if r != self.rank]
        theirs = {peer: np.empty_like(mine) for peer in peers}
        self.wait_all([self.irecv(peer, theirs[peer], None, meta) for peer in peers]
                      + [self.isend(peer, mine, meta) for peer in peers])
        for peer in peers:
            if not np.array_equal(theirs[peer], mine):
                text = theirs[peer].tobytes().rstrip(b"\0").decode(errors="replace")
                error = MismatchError(explain_mismatch(self.rank, signature, peer, text))
                self.abort(str(error))
                raise error

    def close(self) -> None:
        """Nothing to release: the parent owns the channels."""

