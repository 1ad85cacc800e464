"""A parameter server: rank 0 holds the model and the optimizer, the other ranks compute gradients.

Each worker repeatedly receives the current parameters, computes a gradient on its next batch and
sends it (with its loss) to the server, which applies it and replies with fresh parameters
(Li et al., "Scaling Distributed Machine Learning with the Parameter Server", OSDI 2014).

* ``mode="sync"``: the server waits for one gradient from every worker, applies their mean, and
  replies to all; equivalent to data parallelism over the reduce-then-broadcast schedule.
* ``mode="async"``: the server applies each gradient the moment it arrives (Hogwild-style
  staleness: the gradient may have been computed on parameters several updates old).
  ``staleness=s`` bounds how far a worker may run ahead: the server holds back its reply until
  the slowest unfinished worker is at most ``s`` steps behind (stale synchronous parallel,
  Ho et al., NIPS 2013). ``staleness=None`` is fully asynchronous.

The server's statistics record, for every applied gradient, how many updates happened between
the worker fetching the parameters and its gradient being applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..nn import Module
from ..nn import functional as F
from ..optim import Optimizer
from ..tensor import Tensor
from .ddp import flatten, unflatten_into
from .errors import CommAborted, CommTimeout
from .group import ProcessGroup

MODES = ("sync", "async")


@dataclass
class ServerStats:
    """What the server saw: per applied gradient its staleness and the worker's loss."""

    updates: int = 0
    staleness: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    held: int = 0  # replies delayed by the staleness bound
    seconds: float = 0.0


def _wait_any(group: ProcessGroup, sources: Iterable[int]) -> int:
    """The first of ``sources`` with a message waiting; raises instead of waiting forever."""
    transport, sources = group.transport, list(sources)
    start = time.monotonic()
    while True:
        for src in sources:
            if transport.poll(src):
                return src
        message = transport.aborted()
        if message is not None:
            raise CommAborted(f"rank {group.rank}: the group was aborted: {message}")
        if time.monotonic() - start > transport.timeout:
            raise CommTimeout(f"parameter server: no gradient from ranks {sources} for "
                              f"{transport.timeout:g} s (is a worker dead or hung?)")
        time.sleep(1e-4)


def _apply(model: Module, optimizer: Optimizer, grad: np.ndarray) -> None:
    params = list(model.parameters())
    for p in params:
        p.grad = Tensor(np.empty_like(p.data))
    unflatten_into(grad, [p.grad.data for p in params])
    optimizer.step()


def _serve(group: ProcessGroup, model: Module, optimizer: Optimizer, mode: str,
           staleness: int | None) -> ServerStats:
    stats, start = ServerStats(), time.perf_counter()
    workers = list(range(1, group.world_size))
    steps = {w: int(group.recv(w)[0]) for w in workers}
    clock = dict.fromkeys(workers, 0)  # gradients applied per worker
    fetched = dict.fromkeys(workers, 0)  # the version each worker last received
    version = 0

    def reply(w: int) -> None:
        group.send(flatten([p.data for p in model.parameters()]), w)
        fetched[w] = version

    for w in workers:
        reply(w)
    held: set[int] = set()
    while any(clock[w] < steps[w] for w in workers):
        active = [w for w in workers if clock[w] < steps[w] and w not in held]
        ready = active if mode == "sync" else [_wait_any(group, active)]
        received = [group.recv(w) for w in ready]
        for w, message in zip(ready, received):
            stats.staleness.append(version - fetched[w])
            stats.losses.append(float(message[-1]))
            clock[w] += 1
        _apply(model, optimizer, np.mean([m[:-1] for m in received], axis=0))
        version += 1
        stats.updates += 1
        held |= set(ready)
        running = [clock[w] for w in workers if clock[w] < steps[w]]
        slowest = min(running, default=max(clock.values()))
        for w in sorted(held):
            if staleness is None or mode == "sync" or clock[w] - slowest <= staleness \
                    or clock[w] >= steps[w]:
                reply(w)
                held.discard(w)
            elif w in ready:
                stats.held += 1
    stats.seconds = time.perf_counter() - start
    return stats


def _work(group: ProcessGroup, model: Module, batches: Iterable[tuple[Tensor, Tensor]],
          loss_fn: Callable[[Tensor, Tensor], Tensor]) -> list[float]:
    batches = list(batches)
    params = list(model.parameters())
    group.send(np.array([len(batches)], np.int64), 0)
    losses = []
    for x, y in batches:
        unflatten_into(group.recv(0), [p.data for p in params])
        for p in params:
            p.grad = None
        loss = loss_fn(model(x), y)
        loss.backward()
        losses.append(float(loss.item()))
        group.send(np.append(flatten([p.grad.data for p in params], np.float64), losses[-1]), 0)
    unflatten_into(group.recv(0), [p.data for p in params])  # the final parameters
    return losses


def parameter_server(group: ProcessGroup, model: Module, optimizer: Optimizer | None = None,
                     batches: Iterable[tuple[Tensor, Tensor]] = (), mode: str = "sync",
                     staleness: int | None = None,
                     loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
                     ) -> ServerStats | list[float]:
    """Train ``model`` with rank 0 as server (needs ``optimizer``) and the rest as workers.

    Workers iterate over their own ``batches``; the server returns :class:`ServerStats` and
    leaves the trained parameters in its ``model``, each worker returns its losses.
    """
    if mode not in MODES:
        raise ValueError(f"parameter_server: mode must be one of {MODES}, got {mode!r}")
    if staleness is not None and (mode == "sync" or staleness < 0):
        raise ValueError(f"parameter_server: staleness must be None or >= 0 and needs "
                         f"mode='async', got staleness={staleness!r} with mode={mode!r}")
    if group.world_size < 2:
        raise ValueError("parameter_server: needs at least 2 ranks (a server and a worker), "
                         f"got world_size={group.world_size}")
    if group.rank == 0:
        if optimizer is None:
            raise ValueError("parameter_server: the server (rank 0) needs an optimizer")
        return _serve(group, model, optimizer, mode, staleness)
    return _work(group, model, batches, loss_fn)
