"""What every transport provides: non-blocking sends and receives driven to completion together.

A transport moves byte buffers between ranks. ``isend``/``irecv`` return requests; ``wait_all``
drives all of them (so two ranks that send to each other in the same round never deadlock on
bounded buffers), backs off instead of busy-spinning, and raises :class:`CommTimeout` when no
request makes progress for ``timeout`` seconds, or :class:`CommAborted` when another rank aborted.

Every collective starts with :meth:`Transport.agree` on its *signature* (``"all_reduce op=sum
dtype=float32 shape=(1000,)"``): ranks that called different collectives, or the same one with a
different root, reduce op, dtype or shape, all raise :class:`MismatchError` naming what differs.
Every message also carries a short *meta* string (``"collective dtype shape"``) that the receiver
compares with its own.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from .errors import CommAborted, CommError, CommTimeout, MismatchError

Reducer = Callable[[np.ndarray, np.ndarray], None]

META_BYTES = 104  # room for the meta string in a message header
# An idle wait polls for SPIN_SECONDS (cheap when the peer is running on another core), then
# yields the core for up to YIELD_SECONDS (ranks may outnumber cores), then sleeps briefly.
SPIN_SECONDS = 50e-6
YIELD_SECONDS = 2e-3


def make_meta(tag: str, array: np.ndarray) -> str:
    """The description a message carries: what operation, and the sender's dtype and shape."""
    shape = ",".join(str(d) for d in array.shape)
    meta = f"{tag} {array.dtype.str} ({shape})"
    if len(meta.encode()) > META_BYTES:
        raise ValueError(f"{tag}: a {array.ndim}-d array's description does not fit a message "
                         f"header ({META_BYTES} bytes); reshape it to fewer dimensions")
    return meta


def parse_meta(meta: str) -> tuple[str, np.dtype, tuple[int, ...]]:
    """``(tag, dtype, shape)`` back from :func:`make_meta`'s string."""
    tag, dtype, shape = meta.split(" ")
    dims = shape.strip("()")
    return tag, np.dtype(dtype), tuple(int(d) for d in dims.split(",")) if dims else ()


def signature(collective: str, array: np.ndarray, **params: object) -> str:
    """What every rank must agree on to run a collective: its name, parameters, dtype and shape."""
    fields = [f"{k}={v}" for k, v in params.items() if v is not None]
    shape = str(tuple(array.shape)).replace(" ", "")
    return " ".join([collective, *fields, f"dtype={array.dtype}", f"shape={shape}"])


def _fields(sig: str) -> tuple[str, dict[str, str]]:
    name, *rest = sig.split(" ")
    return name, dict(f.split("=", 1) for f in rest if "=" in f)


def explain_mismatch(rank: int, mine: str, peer: int, theirs: str) -> str:
    """One line naming both calls and what differs between them."""
    name, fields = _fields(mine)
    other, peer_fields = _fields(theirs)
    if name != other:
        what = f"different collectives ({name} vs {other})"
    else:
        names = {"op": "reduce op", "root": "root", "dtype": "dtype", "shape": "shape",
                 "algorithm": "algorithm"}
        diffs = [f"{names.get(k, k)} ({fields.get(k, '-')} vs {peer_fields.get(k, '-')})"
                 for k in dict.fromkeys([*fields, *peer_fields])
                 if fields.get(k) != peer_fields.get(k)]
        what = "different " + ", ".join(diffs)
    return (f"mismatched collective: rank {rank} called {_call(mine)} but rank {peer} called "
            f"{_call(theirs)}: {what} (every rank must make the same call)")


def _call(sig: str) -> str:
    name, fields = _fields(sig)
    return f"{name}({', '.join(f'{k}={v}' for k, v in fields.items())})"


def describe(meta: str) -> str:
    _, dtype, shape = parse_meta(meta)
    return f"{dtype} {shape}"


def check_meta(got: str, expected: str | None, src: int, rank: int) -> None:
    """Raise :class:`MismatchError` naming both ranks when a peer's buffer differs from ours."""
    if expected is not None and got != expected:
        tag, their_tag = parse_meta(expected)[0], parse_meta(got)[0]
        if tag != their_tag:
            raise MismatchError(f"{tag}: rank {rank} is in {tag} but rank {src} sent it a "
                                f"message of {their_tag} (every rank must make the same calls)")
        raise MismatchError(f"{tag}: rank {src} passed {describe(got)} but rank {rank} passed "
                            f"{describe(expected)} (every rank must pass the same shape and dtype)")


def check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not (isinstance(timeout, (int, float))
                                         and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite positive number of seconds, got {timeout!r}")


class Request:
    """One pending send or receive; ``progress()`` moves it on without blocking."""

    peer: int
    kind: str
    done: bool = False
    result: np.ndarray | None = None
    meta: str | None = None  # a receive: the description its message arrived with

    def progress(self) -> bool:
        """Do what can be done now; return whether anything moved."""
        raise NotImplementedError


class Transport:
    """Base class: rank, world size, timeout, and the shared waiting loop."""

    name = "transport"

    def __init__(self, rank: int, world_size: int, timeout: float) -> None:
        check_timeout(timeout)
        self.rank, self.world_size, self.timeout = rank, world_size, float(timeout)

    # implemented by transports ------------------------------------------------------------
    def isend(self, dst: int, data: np.ndarray, meta: str) -> Request:
        raise NotImplementedError

    def irecv(self, src: int, into: np.ndarray | None = None, reduce: Reducer | None = None,
              expect: str | None = None) -> Request:
        """Receive into ``into`` (overwrite, or ``reduce(into, received)``), or a new array."""
        raise NotImplementedError

    def poll(self, src: int) -> bool:
        """Whether a message from ``src`` has (at least partly) arrived."""
        raise NotImplementedError

    def abort(self, message: str) -> None:
        """Tell every rank that this one failed with ``message``."""

    def aborted(self) -> str | None:
        """The abort message if some rank aborted the group, else None."""
        return None

    def close(self) -> None:
        """Release this rank's resources."""

    def exited(self, peer: int) -> int | None:
        """``peer``'s exit code if its process is known to have ended, else None."""
        return None

    def agree(self, signature: str) -> None:
        """Return once every rank called a collective with this ``signature``; raise
        :class:`MismatchError` naming the difference when some rank's differs."""
        raise NotImplementedError

    def has_all_reduce(self, array: np.ndarray) -> bool:
        """Whether this transport has its own (compiled) :meth:`all_reduce` for ``array``."""
        return False

    def all_reduce(self, flat: np.ndarray, op: str, signature: str) -> None:
        """The transport's own all-reduce (``op``: sum, mean, max or min) of a flat array, in
        place (when :meth:`has_all_reduce`)."""
        raise NotImplementedError

    # shared --------------------------------------------------------------------------------
    def check_peer(self, peer: int, what: str) -> None:
        if not isinstance(peer, (int, np.integer)) or not 0 <= peer < self.world_size \
                or peer == self.rank:
            raise ValueError(f"{what}: peer must be another rank in [0, {self.world_size}), "
                             f"got {peer!r} on rank {self.rank}")

    def wait_all(self, requests: Sequence[Request]) -> None:
        """Drive ``requests`` to completion, backing off while idle; raise instead of hanging."""
        pending = [r for r in requests if not r.done]
        message = self.aborted()
        if message is not None:  # an aborted group stays aborted
            raise CommAborted(f"rank {self.rank}: the group was aborted: {message}")
        idle_spins, idle_since = 0, 0.0
        try:
            while pending:
                moved = False
                for req in pending:
                    moved = req.progress() or moved
                pending = [r for r in pending if not r.done]
                if not pending:
                    return
                if moved:
                    idle_spins = 0
                    continue
                message = self.aborted()
                if message is not None:
                    raise CommAborted(f"rank {self.rank}: the group was aborted: {message}")
                idle_spins += 1
                if idle_spins % 64 == 0:
                    self._check_peers_alive(pending)
                now = time.monotonic()
                if idle_spins == 1:
                    idle_since = now
                idle = now - idle_since
                if idle < SPIN_SECONDS:
                    continue
                if idle > self.timeout:
                    waits = ", ".join(f"{r.kind} with rank {r.peer}" for r in pending)
                    raise CommTimeout(f"rank {self.rank}: no progress for {self.timeout:g} s "
                                      f"waiting on {waits} (is that rank dead or hung?)")
                if idle < YIELD_SECONDS:
                    os.sched_yield()
                else:
                    time.sleep(min(1e-3, idle / 20))
        except CommAborted:
            raise
        except CommError as error:
            self.abort(str(error))
            raise

    def _check_peers_alive(self, pending: Sequence[Request]) -> None:
        """Raise when a request waits on a rank whose process has ended (after one last look:
        what it sent before it exited is still delivered)."""
        for req in pending:
            code = self.exited(req.peer)
            if code is not None and not req.progress() and not req.done:
                raise CommAborted(f"rank {self.rank}: rank {req.peer} exited (code {code}) "
                                  f"while this rank waited to {req.kind} with it")
