"""Model replicas: worker processes that each hold one copy of the model and run whole batches.

The server's event loop sends a batch (a float32 array of pixel rows) down a pipe to an idle
replica and is woken by the pipe when the logits come back, so it never blocks on inference.
Each worker limits its BLAS to ``threads`` threads (replicas, not threads, are the unit of
parallelism), ignores Ctrl-C (the server shuts it down in order) and exits when its pipe
closes, so a killed server leaves no orphans. A replica that dies fails its in-flight batch with
an error and is started again.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing as mp
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

__all__ = ["ReplicaError", "Replica", "ReplicaPool"]


class ReplicaError(RuntimeError):
    """A replica failed to run a batch (it raised, or its process died)."""


def _worker(conn: Connection, model_name: str, checkpoint: str, threads: int) -> None:
    """Body of a replica process: load the model, then answer ``(batch_id, rows)`` messages."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    from .models import load, predict

    threadpool_limits(threads)
    model = load(model_name, checkpoint)
    predict(model, model_name, np.zeros((1, 64), np.float32))  # warm-up
    conn.send(("ready", None, 0.0))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        batch_id, rows = message
        start = time.perf_counter()
        try:
            logits = predict(model, model_name, rows)
        except Exception as error:  # reported to the server; the replica keeps serving
            conn.send((batch_id, f"{type(error).__name__}: {error}", 0.0))
            continue
        conn.send((batch_id, logits, time.perf_counter() - start))


@dataclass(eq=False)
class Replica:
    """One worker process and the server's end of its pipe."""

    index: int
    process: mp.process.BaseProcess
    conn: Connection
    busy: bool = False
    batches: int = 0
    waiting: dict[int, asyncio.Future] = field(default_factory=dict)


class ReplicaPool:
    """``count`` replicas of ``model_name`` loaded from ``checkpoint``.

    :meth:`start` launches them and waits until every one has loaded its model; :meth:`attach`
    hooks their pipes into the running event loop; :meth:`run` sends a batch to an idle replica.
    """

    def __init__(self, model_name: str, checkpoint: str | Path, count: int = 1, threads: int = 1,
                 start_timeout: float = 120.0) -> None:
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"ReplicaPool: count must be a positive integer, got {count!r}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"ReplicaPool: threads must be a positive integer, got {threads!r}")
        self.model_name, self.checkpoint = model_name, str(checkpoint)
        self.count, self.threads, self.start_timeout = count, threads, start_timeout
        self.replicas: list[Replica] = []
        self.restarts = 0
        self._context = mp.get_context("spawn")
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_free = lambda: None

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start every replica and wait (up to ``start_timeout`` s) until all are ready."""
        pending = [self._launch(i) for i in range(self.count)]
        try:
            for replica in pending:
                self._wait_ready(replica)
        except BaseException:
            self.replicas = pending
            self.close()
            raise
        self.replicas = pending

    def _launch(self, index: int) -> Replica:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_worker, args=(theirs, self.model_name, self.checkpoint, self.threads),
            name=f"mlsys-replica-{index}", daemon=True)
        process.start()
        theirs.close()
        return Replica(index, process, ours)

    def _wait_ready(self, replica: Replica) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not replica.conn.poll(0.1):
            if not replica.process.is_alive():
                raise ReplicaError(f"replica {replica.index} exited with code "
                                   f"{replica.process.exitcode} while loading {self.model_name!r}")
            if time.monotonic() > deadline:
                raise ReplicaError(f"replica {replica.index} not ready after {self.start_timeout} s")
        tag, _, _ = replica.conn.recv()
        if tag != "ready":
            raise ReplicaError(f"replica {replica.index} sent {tag!r} instead of 'ready'")

    def attach(self, loop: asyncio.AbstractEventLoop, on_free=lambda: None) -> None:
        """Watch every replica's pipe from ``loop``; ``on_free()`` runs when a replica frees up."""
        self._loop, self._on_free = loop, on_free
        for replica in self.replicas:
            loop.add_reader(replica.conn.fileno(), self._readable, replica)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every replica: ask politely, then terminate; fail what is still in flight."""
        for replica in self.replicas:
            if self._loop is not None and not replica.conn.closed:
                self._loop.remove_reader(replica.conn.fileno())
            self._fail(replica, ReplicaError("server shutting down"))
            try:
                replica.conn.send(None)
            except (OSError, ValueError):
                pass
        for replica in self.replicas:
            replica.process.join(timeout)
            if replica.process.is_alive():
                replica.process.terminate()
                replica.process.join(timeout)
            replica.conn.close()
        self.replicas = []

    # -- serving -------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.replicas)

    def idle(self) -> list[Replica]:
        return [r for r in self.replicas if not r.busy]

    def alive(self) -> bool:
        return bool(self.replicas) and all(r.process.is_alive() for r in self.replicas)

    async def run(self, replica: Replica, rows: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Logits for ``rows`` from ``replica``, the seconds its model took, and the loop time
        at which the replica was free again."""
        if self._loop is None:
            raise RuntimeError("ReplicaPool.run: call attach(loop) first")
        batch_id = next(self._ids)
        future = self._loop.create_future()
        replica.busy, replica.waiting[batch_id] = True, future
        try:
            replica.conn.send((batch_id, rows))
        except (OSError, ValueError) as error:
            replica.waiting.pop(batch_id, None)
            self._replace(replica, f"its pipe is closed ({error})")
            raise ReplicaError(f"replica {replica.index} is gone") from None
        return await future

    def _readable(self, replica: Replica) -> None:
        try:
            batch_id, result, seconds = replica.conn.recv()
        except (EOFError, OSError):
            self._replace(replica, f"exited with code {replica.process.exitcode}")
            return
        future = replica.waiting.pop(batch_id, None)
        replica.busy, replica.batches = False, replica.batches + 1
        if future is not None and not future.done():
            if isinstance(result, str):
                future.set_exception(ReplicaError(f"replica {replica.index}: {result}"))
            else:
                future.set_result((result, seconds, self._loop.time()))
        self._on_free()

    def _fail(self, replica: Replica, error: Exception) -> None:
        for future in replica.waiting.values():
            if not future.done():
                future.set_exception(error)
        replica.waiting.clear()

    def _replace(self, replica: Replica, why: str) -> None:
        """A replica died: fail its batch, and start a new one in its slot off the event loop."""
        assert self._loop is not None
        replica.busy = True  # out of rotation until its successor is ready
        self._loop.remove_reader(replica.conn.fileno())
        self._fail(replica, ReplicaError(f"replica {replica.index} {why}"))
        replica.conn.close()
        replica.process.join(1.0)
        self.restarts += 1
        self._loop.create_task(self._restart(replica.index))

    async def _restart(self, index: int) -> None:
        new = await asyncio.to_thread(self._launch_ready, index)
        slot = next(i for i, r in enumerate(self.replicas) if r.index == index)
        self.replicas[slot] = new
        assert self._loop is not None
        self._loop.add_reader(new.conn.fileno(), self._readable, new)
        self._on_free()

    def _launch_ready(self, index: int) -> Replica:
        replica = self._launch(index)
        self._wait_ready(replica)
        return replica
