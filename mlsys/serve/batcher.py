"""The dynamic batcher: a bounded queue of requests, and one loop that forms batches.

Requests wait in arrival order. Whenever a replica is free and requests are waiting, the loop
asks the :class:`~mlsys.serve.policy.BatchPolicy` for a decision: send the oldest ``size``
requests to that replica now, or wait (until the policy's timer, an arrival, or a replica frees
up, whichever is first). A full queue refuses new requests at once (:class:`QueueFull`), so
overload costs clients a retry, never the server unbounded memory.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .metrics import ServerMetrics
from .policy import BatchPolicy, QueueState, check_decision
from .replicas import Replica, ReplicaError, ReplicaPool

__all__ = ["QueueFull", "PolicyError", "Batcher", "Timing"]


class QueueFull(RuntimeError):
    """The batcher's queue holds ``max_queue`` requests already."""


class PolicyError(RuntimeError):
    """The batching policy raised or made an impossible decision; the waiting requests fail."""


@dataclass(eq=False)
class _Request:
    rows: np.ndarray
    arrival: float
    future: asyncio.Future


@dataclass(frozen=True)
class Timing:
    """Where one request's time went inside the server (seconds), and its batch's size."""

    arrival: float  # when it reached the batcher, on the machine's monotonic clock
    queue: float  # waiting in the batcher's queue
    replica: float  # its batch holding a replica: sending, computing, replying
    compute: float  # the model's forward pass, measured in the replica
    batch: int


class Batcher:
    """Forms batches from submitted requests under ``policy`` and runs them on ``pool``."""

    def __init__(self, policy: BatchPolicy, pool: ReplicaPool, max_queue: int,
                 metrics: ServerMetrics | None = None) -> None:
        if not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"Batcher: max_queue must be a positive integer, got {max_queue!r}")
        self.policy, self.pool, self.max_queue, self.metrics = policy, pool, max_queue, metrics
        self._queue: deque[_Request] = deque()
        self._arrivals: deque[float] = deque()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.batches = 0

    def __len__(self) -> int:
        return len(self._queue)

    def submit(self, rows: np.ndarray) -> asyncio.Future:
        """Queue ``rows``; the future resolves to ``(logits, Timing)``. Raises QueueFull when full."""
        if self._closed:
            raise QueueFull("the server is shutting down")
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"queue full ({self.max_queue} requests waiting); retry later")
        now = self._loop.time()
        request = _Request(rows, now, self._loop.create_future())
        self._queue.append(request)
        self._arrivals.append(now)
        self._gauge_queue()
        self._wake.set()
        return request.future

    def poke(self) -> None:
        """Ask the loop to look again (a replica has freed up)."""
        self._wake.set()

    async def run(self) -> None:
        """The batching loop; runs until :meth:`close`."""
        while not self._closed:
            timeout = self._step()
            if timeout == 0.0:
                continue
            self._wake.clear()
            timer = self._loop.call_later(timeout, self._wake.set) if math.isfinite(timeout) else None
            await self._wake.wait()
            if timer is not None:
                timer.cancel()

    def _step(self) -> float:
        """Send one batch if the policy says so (returns 0), else the seconds to wait."""
        idle = self.pool.idle()
        if not self._queue or not idle:
            return math.inf
        state = QueueState(self._loop.time(), self._arrivals, len(idle), self.pool.size)
        try:
            decision = check_decision(self.policy, state, self.policy.decide(state))
        except Exception as error:  # a broken policy fails the waiting requests, not the server
            self._fail_waiting(PolicyError(f"batching policy failed: {type(error).__name__}: {error}"))
            return math.inf
        if not decision.size:
            return decision.wait
        batch = [self._queue.popleft() for _ in range(decision.size)]
        for _ in range(decision.size):
            self._arrivals.popleft()
        self._gauge_queue()
        idle[0].busy = True  # taken now, not when the task below starts
        self._loop.create_task(self._run(idle[0], batch, state.now))
        return 0.0

    async def _run(self, replica: Replica, batch: list[_Request], sent: float) -> None:
        self.batches += 1
        if self.metrics:
            self.metrics.batch_size.observe(len(batch))
            self.metrics.busy_replicas.inc()
            for request in batch:
                self.metrics.queue_wait.observe(sent - request.arrival)
        rows = batch[0].rows if len(batch) == 1 else np.concatenate([r.rows for r in batch])
        try:
            logits, seconds, freed = await self.pool.run(replica, rows)
        except ReplicaError as error:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error)
            return
        finally:
            if self.metrics:
                self.metrics.busy_replicas.dec()
            self._wake.set()
        held = freed - sent
        if self.metrics:
            self.metrics.compute.observe(seconds)
        start = 0
        for request in batch:
            n = len(request.rows)
            if not request.future.done():  # the client may have gone away
                timing = Timing(request.arrival, sent - request.arrival, held, seconds, len(batch))
                request.future.set_result((logits[start:start + n], timing))
            start += n

    def _fail_waiting(self, error: Exception) -> None:
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(error)
        self._arrivals.clear()
        self._gauge_queue()

    def _gauge_queue(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(len(self._queue))

    def close(self) -> None:
        """Stop the loop and refuse the requests still waiting."""
        self._closed = True
        self._fail_waiting(QueueFull("the server is shutting down"))
        self._wake.set()
