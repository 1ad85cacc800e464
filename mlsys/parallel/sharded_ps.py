"""A sharded parameter server: several server processes each own a slice of the parameters.

The first ``servers`` ranks of a group are servers, the others workers (Li et al., "Scaling
Distributed Machine Learning with the Parameter Server", OSDI 2014). Server ``s`` owns the
``s``-th contiguous slice of the flattened parameters and its own optimizer for it; a worker
pushes each slice of its gradient to the slice's server and pulls the updated slices back, so
the servers' links and cores share the traffic and the updates.

Consistency is one rule on every server, stale synchronous parallel (Ho et al., "More Effective
Distributed ML via a Stale Synchronous Parallel Parameter Server", NIPS 2013): a worker may
start iteration ``k`` only once every worker has finished iteration ``k - s - 1``. A server
applies every gradient as it arrives and holds back its reply to a worker that is more than
``s`` iterations ahead of the slowest unfinished one. ``mode="bsp"`` is ``s = 0`` (the servers
take the round's gradients in worker order, so a run is deterministic), ``"asp"`` has no bound,
``"ssp"`` bound ``staleness``: the rules of ``simulators.training.parameter_server``, which
predicts these runs. The staleness recorded for an iteration is how many iterations the slowest
worker lags behind it when it starts (the simulator's measure).

Stragglers are injected as per-worker, per-iteration delays (``delays``, seconds; the chapter
takes them from the Alibaba PAI trace's per-worker mini-batch times): a worker sleeps that long
before pushing, as a slower GPU would take longer to compute. Workers keep snapshots of the
parameters with the time they were pulled, so accuracy can be plotted against wall-clock time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..comm.ddp import flatten, unflatten_into
from ..comm.errors import CommAborted, CommTimeout
from ..comm.group import ProcessGroup
from ..comm.schedules import chunk_ranges
from ..nn import Module
from ..nn import functional as F
from ..nn.module import Parameter
from ..optim import Optimizer
from ..tensor import Tensor

__all__ = ["MODES", "staleness_bound", "ServerReport", "WorkerReport", "sharded_parameter_server"]

MODES = ("bsp", "asp", "ssp")
Batches = Sequence[tuple[Tensor, Tensor]]


def staleness_bound(mode: str, staleness: int = 0) -> float:
    """How many iterations a worker may run ahead of the slowest: 0 (BSP), ``staleness`` (SSP)
    or unbounded (ASP)."""
    if mode not in MODES:
        raise ValueError(f"parameter server: mode must be one of {MODES}, got {mode!r}")
    if isinstance(staleness, bool) or not isinstance(staleness, int) or staleness < 0:
        raise ValueError(f"parameter server: staleness must be a non-negative integer, got "
                         f"{staleness!r}")
    return {"bsp": 0, "asp": math.inf, "ssp": staleness}[mode]


@dataclass
class ServerReport:
    """What one server saw: updates applied, per iteration the staleness at its start, and how
    often a reply was held back by the bound."""

    server: int
    updates: int = 0
    staleness: list[int] = field(default_factory=list)
    held: int = 0
    seconds: float = 0.0
    shard: np.ndarray | None = None  # the final parameters of this server's slice


@dataclass
class WorkerReport:
    """One worker's iterations: when each ended (seconds from its start), how long its compute
    took (forward, backward and any injected delay), its losses, and parameter snapshots
    ``(seconds, iteration, flat parameters)``."""

    worker: int
    ends: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    snapshots: list[tuple[float, int, np.ndarray]] = field(default_factory=list)


def _wait_any(group: ProcessGroup, sources: list[int]) -> int:
    """The first of ``sources`` with a message waiting; raises instead of waiting forever."""
    transport, start = group.transport, time.monotonic()
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
        time.sleep(50e-6)


def _serve(group: ProcessGroup, server: int, shard: Parameter, optimizer: Optimizer,
           workers: list[int], bound: float) -> ServerReport:
    report, start = ServerReport(server), time.perf_counter()
    steps = {w: int(group.recv(w)[0]) for w in workers}
    clock = dict.fromkeys(workers, 0)  # gradients applied per worker
    held: set[int] = set()
    for w in workers:
        group.send(shard.data, w)
    while any(clock[w] < steps[w] for w in workers):
        active = [w for w in workers if clock[w] < steps[w] and w not in held]
        arrived = active if bound == 0 else [_wait_any(group, active)]
        for w in arrived:
            shard.grad = Tensor(group.recv(w))
            optimizer.step()
            clock[w] += 1
            report.updates += 1
        held.update(arrived)
        running = [clock[w] for w in workers if clock[w] < steps[w]]
        slowest = min(running, default=0)
        for w in sorted(held):
            if clock[w] >= steps[w] or clock[w] - slowest <= bound:
                if clock[w] < steps[w]:
                    report.staleness.append(clock[w] - slowest)
                group.send(shard.data, w)
                held.discard(w)
            elif w in arrived:
                report.held += 1
    report.seconds = time.perf_counter() - start
    report.shard = np.array(shard.data, copy=True)
    return report


def _work(group: ProcessGroup, worker: int, model: Module, batches: Batches, servers: int,
          delays: Sequence[float], loss_fn: Callable[[Tensor, Tensor], Tensor],
          snapshot_every: int) -> WorkerReport:
    params = list(model.parameters())
    size = sum(p.data.size for p in params)
    slices = chunk_ranges(size, servers)
    report = WorkerReport(worker)
    for s in range(servers):
        group.send(np.array([len(batches)], np.int64), s)
    flat = np.concatenate([group.recv(s) for s in range(servers)])
    start = time.perf_counter()
    for k, (x, y) in enumerate(batches):
        unflatten_into(flat, [p.data for p in params])
        if snapshot_every and k % snapshot_every == 0:
            report.snapshots.append((time.perf_counter() - start, k, flat.copy()))
        for p in params:
            p.grad = None
        began = time.perf_counter()
        loss = loss_fn(model(x), y)
        loss.backward()
        report.losses.append(float(loss.item()))
        if len(delays):
            time.sleep(delays[k % len(delays)])
        report.compute.append(time.perf_counter() - began)
        grad = flatten([p.grad.data for p in params])
        for s, (a, b) in enumerate(slices):
            group.send(grad[a:b], s)
        flat = np.concatenate([group.recv(s) for s in range(servers)])
        report.ends.append(time.perf_counter() - start)
    unflatten_into(flat, [p.data for p in params])  # the final parameters
    report.snapshots.append((report.ends[-1] if report.ends else 0.0, len(batches), flat.copy()))
    return report


def sharded_parameter_server(group: ProcessGroup, model: Module,
                             optimizer: Callable[[list[Parameter]], Optimizer],
                             batches: Batches = (), *, servers: int = 1, mode: str = "bsp",
                             staleness: int = 0, delays: Sequence[Sequence[float]] = (),
                             loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
                             snapshot_every: int = 0) -> ServerReport | WorkerReport:
    """Train ``model`` with ranks ``0..servers-1`` as servers and the rest as workers.

    Every rank builds the same ``model`` (one seed): servers take their slice of its parameters
    and make ``optimizer([slice])``; each worker iterates over its own ``batches``, sleeping
    ``delays[w][k]`` seconds in iteration ``k`` (cycled; empty: no delay), and keeps a
    parameter snapshot every ``snapshot_every`` iterations (0: only the final one). A server
    returns its :class:`ServerReport`, a worker its :class:`WorkerReport`.
    """
    bound = staleness_bound(mode, staleness)
    if isinstance(servers, bool) or not isinstance(servers, int) or not 1 <= servers < group.world_size:
        raise ValueError(f"parameter server: servers must be an integer in [1, "
                         f"{group.world_size - 1}] (at least one rank must be a worker), got "
                         f"{servers!r}")
    workers = list(range(servers, group.world_size))
    if delays and len(delays) != len(workers):
        raise ValueError(f"parameter server: delays must give one sequence per worker "
                         f"({len(workers)}), got {len(delays)}")
    if group.rank < servers:
        values = flatten([p.data for p in model.parameters()])
        a, b = chunk_ranges(values.size, servers)[group.rank]
        shard = Parameter(values[a:b].copy())
        return _serve(group, group.rank, shard, optimizer([shard]), workers, bound)
    w = group.rank - servers
    return _work(group, w, model, batches, servers, delays[w] if delays else (), loss_fn,
                 snapshot_every)
