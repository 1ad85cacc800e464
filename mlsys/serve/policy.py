"""Dynamic batching policies: when to send waiting requests to a free replica, and how many.

A policy is asked for a :class:`Decision` whenever a replica is free and requests are waiting;
it sees only a :class:`QueueState` (the clock, the waiting requests' arrival times, the replicas).
The same object drives the real server's batcher (:mod:`mlsys.serve.batcher`) and the serving
simulator (:mod:`simulators.serving`), so a policy tuned on the simulator runs unchanged in the
server, and the simulator is checked against the server on the same policy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["QueueState", "Decision", "dispatch", "wait", "BatchPolicy", "MaxSizeMaxWait",
           "NoBatching", "check_decision"]


class QueueState(NamedTuple):
    """What a policy may look at: the time, the waiting requests (oldest first), the replicas.

    (A named tuple, not a dataclass: the simulator builds one per decision, millions per run.)"""

    now: float
    arrivals: Sequence[float]  # arrival time of each waiting request, oldest first
    idle_replicas: int
    replicas: int

    @property
    def waiting(self) -> int:
        return len(self.arrivals)

    @property
    def oldest_wait(self) -> float:
        """Seconds the oldest waiting request has waited (0 when none waits)."""
        return self.now - self.arrivals[0] if len(self.arrivals) else 0.0


class Decision(NamedTuple):
    """Send the ``size`` oldest requests as one batch now, or (``size == 0``) ask again after
    ``wait`` seconds; an arrival or a replica becoming free asks sooner."""

    size: int = 0
    wait: float = math.inf


def dispatch(size: int) -> Decision:
    """Send the ``size`` oldest waiting requests now."""
    return Decision(size=int(size))


def wait(seconds: float = math.inf) -> Decision:
    """Send nothing; ask again in ``seconds`` (default: at the next arrival or free replica)."""
    return Decision(wait=float(seconds))


class BatchPolicy:
    """Base class: subclasses set ``name`` and ``max_batch_size`` and define :meth:`decide`."""

    name = "policy"
    max_batch_size = 1

    def decide(self, state: QueueState) -> Decision:
        raise NotImplementedError(f"{type(self).__name__} must define decide(state)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class MaxSizeMaxWait(BatchPolicy):
    """Send a full batch at once, else the waiting requests once the oldest has waited ``max_wait``.

    The rule of Triton's dynamic batcher (``max_queue_delay_microseconds``) and TorchServe
    (``batch_size``, ``max_batch_delay``). ``max_wait=0`` sends whatever waits as soon as a
    replica is free, so batches grow only while every replica is busy.
    """

    def __init__(self, max_batch_size: int = 8, max_wait: float = 0.002) -> None:
        if not isinstance(max_batch_size, int) or isinstance(max_batch_size, bool) or max_batch_size < 1:
            raise ValueError(f"MaxSizeMaxWait: max_batch_size must be a positive integer, "
                             f"got {max_batch_size!r}")
        if not (isinstance(max_wait, (int, float)) and math.isfinite(max_wait) and max_wait >= 0):
            raise ValueError(f"MaxSizeMaxWait: max_wait must be a finite number of seconds >= 0, "
                             f"got {max_wait!r}")
        self.max_batch_size, self.max_wait = max_batch_size, float(max_wait)
        self.name = f"batch<={max_batch_size}, wait<={max_wait * 1e3:g} ms"

    def decide(self, state: QueueState) -> Decision:
        waiting = len(state.arrivals)
        if waiting >= self.max_batch_size:
            return Decision(size=self.max_batch_size)
        remaining = state.arrivals[0] + self.max_wait - state.now
        if remaining <= 1e-9:  # tolerance: a timer set for the deadline may land an ulp early
            return Decision(size=waiting)
        return Decision(wait=remaining)


class NoBatching(MaxSizeMaxWait):
    """One request at a time: the baseline every batching setting is measured against."""

    def __init__(self) -> None:
        super().__init__(1, 0.0)
        self.name = "no batching"


def check_decision(policy: BatchPolicy, state: QueueState, decision: object) -> Decision:
    """``decision`` if it can be carried out in ``state``, else a ValueError naming the policy."""
    if not isinstance(decision, Decision):
        raise TypeError(f"{policy!r}.decide returned {decision!r}; expected a Decision "
                        "(use mlsys.serve.policy.dispatch(n) or wait(seconds))")
    if isinstance(decision.size, bool) or not isinstance(decision.size, numbers.Integral) or \
            not isinstance(decision.wait, numbers.Real):
        raise TypeError(f"{policy!r}.decide returned {decision!r}; expected a whole number of "
                        "requests and a number of seconds")
    if decision.size:
        if not 1 <= decision.size <= min(len(state.arrivals), policy.max_batch_size):
            raise ValueError(f"{policy!r} asked to send {decision.size} requests with "
                             f"{len(state.arrivals)} waiting and max_batch_size "
                             f"{policy.max_batch_size}")
    elif not decision.wait > 0:
        raise ValueError(f"{policy!r} sent nothing and asked to wait {decision.wait!r} s; "
                         "a wait must be positive")
    return decision
