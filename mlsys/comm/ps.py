"""Parameter servers: workers push to server processes and pull from them.

One push/pull protocol (Li et al., "Scaling Distributed Machine Learning with the Parameter
Server", OSDI 2014) serves three uses:

* :func:`sharded_parameter_server` trains an ``nn.Module``: the first ``servers`` ranks are
  servers, server ``s`` owning the ``s``-th contiguous slice of the flattened parameters and an
  optimizer for it; a worker pushes each slice of its gradient to the slice's server and pulls
  the updated slices back, so the servers' links and cores share the traffic and the updates;
* :func:`parameter_server` is its one-server case in chapter 6's terms (``mode="sync"``: the
  round's gradients are averaged into one update, as data parallelism does);
* :func:`mlsys.classic.run_parameter_server` pushes an algorithm's statistics and pulls the
  coordinator's decisions.

Underneath, :func:`serve` runs a server over a :class:`Store` (what a pull returns and how a push
changes it) and :func:`work` runs a worker's iterations. Consistency is one rule, stale
synchronous parallel (Ho et al., "More Effective Distributed ML via a Stale Synchronous Parallel
Parameter Server", NIPS 2013): a worker may start iteration ``k`` only once every worker has
finished iteration ``k - s - 1``. A server applies each push as it arrives and holds back its
reply to a worker more than ``s`` iterations ahead of the slowest unfinished one. With ``s = 0``
(BSP) it takes each round's pushes in worker order, so a run is deterministic; ``s = inf`` is
ASP. These are the rules of ``simulators.training.parameter_server``, which predicts these runs.

Two staleness measures are recorded: per iteration, how many iterations the slowest worker lags
behind it when it starts (the simulator's measure); per push, how many updates the server applied
between the worker's pull and its push (chapter 6's).

Stragglers are injected as per-worker, per-iteration delays (``delays``, seconds; the chapter
takes them from the Alibaba PAI trace's per-worker mini-batch times): a worker sleeps that long
before pushing, as a slower GPU would take longer to compute. Workers keep snapshots of the
parameters with the time they were pulled, so accuracy can be plotted against wall-clock time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..nn import Module
from ..nn import functional as F
from ..nn.module import Parameter
from ..optim import Optimizer
from ..tensor import Tensor
from .ddp import flatten, unflatten_into
from .errors import CommAborted, CommTimeout
from .group import ProcessGroup
from .launcher import launch
from .schedules import chunk_ranges

__all__ = ["MODES", "Store", "ServerReport", "WorkerReport", "ServerStats", "staleness_bound",
           "serve", "work", "sharded_parameter_server", "parameter_server", "transfer_seconds"]

MODES = ("bsp", "asp", "ssp")
Batches = Sequence[tuple[Tensor, Tensor]]
Loss = Callable[[Tensor, Tensor], Tensor]


def staleness_bound(mode: str, staleness: int = 0) -> float:
    """How many iterations a worker may run ahead of the slowest: 0 (BSP), ``staleness`` (SSP)
    or unbounded (ASP)."""
    if mode not in MODES:
        raise ValueError(f"parameter server: mode must be one of {MODES}, got {mode!r}")
    if isinstance(staleness, bool) or not isinstance(staleness, int) or staleness < 0:
        raise ValueError(f"parameter server: staleness must be a non-negative integer, got "
                         f"{staleness!r}")
    return {"bsp": 0, "asp": math.inf, "ssp": staleness}[mode]


class Store(Protocol):
    """What one server holds: the values a pull returns, and the update a push makes."""

    def values(self) -> np.ndarray: ...

    def update(self, pushed: np.ndarray) -> None: ...


@dataclass
class ServerReport:
    """What one server saw.

    ``staleness``: per iteration a worker started, how many iterations the slowest unfinished
    worker lagged behind it; ``lag``: per push, the updates applied between the worker's pull and
    the push; ``held``: replies held back by the bound (under BSP every push of a round but the
    last to arrive); ``rounds``: per update, the ``perf_counter`` times it started waiting, had
    the pushes, had updated and had replied; ``pushed_bytes``/``pulled_bytes``: payload in and out.
    """

    server: int
    updates: int = 0
    staleness: list[int] = field(default_factory=list)
    lag: list[int] = field(default_factory=list)
    held: int = 0
    seconds: float = 0.0
    rounds: list[tuple[float, float, float, float]] = field(default_factory=list)
    pushed_bytes: int = 0
    pulled_bytes: int = 0
    shard: np.ndarray | None = None  # the final values of this server's slice


@dataclass
class WorkerReport:
    """One worker's iterations: the ``perf_counter`` time it started (after its first pull), per
    iteration the times it started computing, had computed (including any injected delay), had
    pushed, had pulled and had applied the pull; its losses, and parameter snapshots
    ``(seconds from start, iterations done, flat parameters)``."""

    worker: int
    start: float = 0.0
    times: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    snapshots: list[tuple[float, int, np.ndarray]] = field(default_factory=list)

    @property
    def ends(self) -> list[float]:
        """Seconds from the start at which each iteration's pull arrived."""
        return [pulled - self.start for _, _, _, pulled, _ in self.times]

    @property
    def compute(self) -> list[float]:
        """Seconds each iteration computed (forward, backward and any injected delay)."""
        return [computed - began for began, computed, _, _, _ in self.times]


@dataclass(frozen=True)
class ServerStats:
    """Chapter 6's view of one server: updates, per applied gradient its staleness counted in
    *updates* between the worker's pull and its push (:attr:`ServerReport.lag`), held replies and
    seconds."""

    updates: int
    staleness: list[int]
    held: int
    seconds: float


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
            raise CommTimeout(f"parameter server: no push from ranks {sources} for "
                              f"{transport.timeout:g} s (is a worker dead or hung?)")
        time.sleep(50e-6)


def serve(group: ProcessGroup, store: Store, workers: Sequence[int], *, bound: float = 0,
          combine: Callable[[list[np.ndarray]], np.ndarray] | None = None,
          first_pull: bool = True, last_pull: bool = True) -> ServerReport:
    """Serve ``workers`` (ranks running :func:`work`) until each has pushed its iterations.

    Each push is one update of ``store``; ``combine`` (BSP only) instead folds each round's
    pushes, in worker order, into one update. ``first_pull``/``last_pull``: whether workers pull
    before their first iteration and after their last one (both sides must agree).
    """
    if combine is not None and bound != 0:
        raise ValueError(f"parameter server: combining a round's pushes needs BSP (bound 0), got "
                         f"bound {bound}")
    clock = time.perf_counter
    report, start = ServerReport(group.rank), clock()
    steps = {w: int(group.recv(w)[0]) for w in workers}
    done = dict.fromkeys(workers, 0)  # pushes applied per worker
    fetched = dict.fromkeys(workers, 0)  # the update count each worker last pulled

    def reply(w: int) -> None:
        values = store.values()
        group.send(values, w)
        report.pulled_bytes += values.nbytes
        fetched[w] = report.updates

    if first_pull:
        for w in workers:
            reply(w)
    held: set[int] = set()
    while any(done[w] < steps[w] for w in workers):
        t0 = clock()
        active = [w for w in workers if done[w] < steps[w] and w not in held]
        arrived = active if bound == 0 else [_wait_any(group, active)]
        pushes = [group.recv(w) for w in arrived]
        t1 = clock()
        report.pushed_bytes += sum(p.nbytes for p in pushes)
        if combine is None:
            for w, pushed in zip(arrived, pushes):
                report.lag.append(report.updates - fetched[w])
                store.update(pushed)
                report.updates += 1
        else:
            report.lag += [report.updates - fetched[w] for w in arrived]
            store.update(combine(pushes))
            report.updates += 1
        for w in arrived:
            done[w] += 1
        t2 = clock()
        held.update(arrived)
        if bound == 0:
            report.held += len(arrived) - 1  # all but the round's last push waited for it
        slowest = min((done[w] for w in workers if done[w] < steps[w]), default=0)
        for w in sorted(held):
            finished = done[w] >= steps[w]
            if finished or done[w] - slowest <= bound:
                if not finished:
                    report.staleness.append(done[w] - slowest)
                if last_pull or not finished:
                    reply(w)
                held.discard(w)
            elif w in arrived:
                report.held += 1
        report.rounds.append((t0, t1, t2, clock()))
    report.seconds = clock() - start
    return report


def work(group: ProcessGroup, servers: int, steps: int, compute: Callable[[int], np.ndarray],
         apply: Callable[[np.ndarray, int], None], *, first_pull: bool = True,
         last_pull: bool = True) -> list[tuple[float, float, float, float, float]]:
    """Run ``steps`` iterations against servers ``0 .. servers-1`` (ranks running :func:`serve`).

    Iteration ``k`` pushes ``compute(k)``, cut into one contiguous slice per server, then pulls
    every server's slice and calls ``apply(values, k + 1)`` (``apply(values, 0)`` after the first
    pull). Returns per iteration the ``perf_counter`` times it started, had computed, had pushed,
    had pulled and had applied.
    """
    clock = time.perf_counter
    for s in range(servers):
        group.send(np.array([steps], np.int64), s)

    def pull() -> np.ndarray:
        return np.concatenate([group.recv(s) for s in range(servers)])

    if first_pull:
        apply(pull(), 0)
    times = []
    for k in range(steps):
        t0 = clock()
        pushed = compute(k)
        t1 = clock()
        for s, (a, b) in enumerate(chunk_ranges(pushed.size, servers)):
            group.send(pushed[a:b], s)
        t2 = t3 = t4 = clock()
        if last_pull or k + 1 < steps:
            values = pull()
            t3 = clock()
            apply(values, k + 1)
            t4 = clock()
        times.append((t0, t1, t2, t3, t4))
    return times


class _Parameters:
    """A server's parameters and their optimizer: a push is a gradient, an update one step."""

    def __init__(self, params: list[Parameter], optimizer: Optimizer) -> None:
        self.params, self.optimizer = params, optimizer

    def values(self) -> np.ndarray:
        return flatten([p.data for p in self.params])

    def update(self, pushed: np.ndarray) -> None:
        for p in self.params:
            p.grad = Tensor(np.empty_like(p.data))
        unflatten_into(pushed, [p.grad.data for p in self.params])
        self.optimizer.step()


def _mean(pushes: list[np.ndarray]) -> np.ndarray:
    return np.mean(pushes, axis=0)


def _train(group: ProcessGroup, worker: int, servers: int, model: Module, batches: Batches,
           delays: Sequence[float], loss_fn: Loss, snapshot_every: int) -> WorkerReport:
    """A worker: pull the parameters, compute a gradient on the next batch, push it; repeat."""
    params = list(model.parameters())
    report = WorkerReport(worker)

    def compute(k: int) -> np.ndarray:
        for p in params:
            p.grad = None
        x, y = batches[k]
        loss = loss_fn(model(x), y)
        loss.backward()
        report.losses.append(float(loss.item()))
        if len(delays):
            time.sleep(delays[k % len(delays)])
        return flatten([p.grad.data for p in params])

    def apply(values: np.ndarray, done: int) -> None:
        if done == 0:
            report.start = time.perf_counter()
        unflatten_into(values, [p.data for p in params])
        if (snapshot_every and done % snapshot_every == 0 and done < len(batches)) \
                or done == len(batches):
            report.snapshots.append((time.perf_counter() - report.start, done, values.copy()))

    report.times = work(group, servers, len(batches), compute, apply)
    return report


def sharded_parameter_server(group: ProcessGroup, model: Module,
                             optimizer: Callable[[list[Parameter]], Optimizer],
                             batches: Batches = (), *, servers: int = 1, mode: str = "bsp",
                             staleness: int = 0, delays: Sequence[Sequence[float]] = (),
                             loss_fn: Loss = F.cross_entropy,
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
        report = serve(group, _Parameters([shard], optimizer([shard])), workers, bound=bound)
        report.shard = np.array(shard.data, copy=True)
        return report
    w = group.rank - servers
    return _train(group, w, servers, model, batches, delays[w] if delays else (), loss_fn,
                  snapshot_every)


def parameter_server(group: ProcessGroup, model: Module, optimizer: Optimizer | None = None,
                     batches: Iterable[tuple[Tensor, Tensor]] = (), mode: str = "sync",
                     staleness: int | None = None, loss_fn: Loss = F.cross_entropy,
                     ) -> ServerStats | list[float]:
    """Train ``model`` with rank 0 as the one server (needs ``optimizer``) and the rest as workers.

    ``mode="sync"``: the server waits for one gradient from every worker and applies their mean
    as one update (data parallelism through a server). ``mode="async"``: every gradient is an
    update of its own, applied as it arrives; ``staleness=s`` holds a worker back while it is more
    than ``s`` iterations ahead of the slowest (SSP), ``None`` never (ASP). Workers iterate over
    their own ``batches``; the server returns :class:`ServerStats` and leaves the trained
    parameters in its ``model``, each worker returns its losses.
    """
    if mode not in ("sync", "async"):
        raise ValueError(f"parameter_server: mode must be one of ('sync', 'async'), got {mode!r}")
    if staleness is not None and (mode == "sync" or staleness < 0):
        raise ValueError(f"parameter_server: staleness must be None or >= 0 and needs "
                         f"mode='async', got staleness={staleness!r} with mode={mode!r}")
    if group.world_size < 2:
        raise ValueError("parameter_server: needs at least 2 ranks (a server and a worker), "
                         f"got world_size={group.world_size}")
    if group.rank > 0:
        return _train(group, group.rank - 1, 1, model, list(batches), (), loss_fn, 0).losses
    if optimizer is None:
        raise ValueError("parameter_server: the server (rank 0) needs an optimizer")
    bound = 0 if mode == "sync" else math.inf if staleness is None else staleness
    report = serve(group, _Parameters(list(model.parameters()), optimizer),
                   range(1, group.world_size), bound=bound, combine=_mean if mode == "sync" else None)
    return ServerStats(report.updates, report.lag, report.held, report.seconds)


def _ping_pong(group: ProcessGroup, elements: int, rounds: int) -> float:
    buffer, times = np.zeros(elements, np.float32), []
    for _ in range(rounds):
        group.barrier()
        start = time.perf_counter()
        if group.rank == 0:
            group.send(buffer, 1)
            group.recv(1, buffer)
        else:
            group.recv(0, buffer)
            group.send(buffer, 0)
        times.append((time.perf_counter() - start) / 2)
    return float(np.median(times))


def transfer_seconds(elements: int, rounds: int = 20) -> float:
    """Seconds one message of ``elements`` float32 values takes between two processes of this
    machine, alone: half the median round trip (what a simulator charges a pull or a push)."""
    if isinstance(elements, bool) or not isinstance(elements, int) or elements < 1:
        raise ValueError(f"transfer_seconds: elements must be a positive integer, got {elements!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"transfer_seconds: rounds must be a positive integer, got {rounds!r}")
    return launch(_ping_pong, 2, elements, rounds)[0]
