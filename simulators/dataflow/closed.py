"""Closed forms of a superstep's time, for the patterns on which the network is uncontended or
evenly shared; the simulator must reproduce them exactly (``tests/simulators/dataflow``).

On :func:`~simulators.dataflow.model.star` with links of ``link.latency`` and ``link.bandwidth``
a message costs ``alpha + n * beta``, ``alpha`` twice the link latency (two hops) and ``beta``
one over the bandwidth; ``k`` flows sharing a port each get ``1/k`` of it (max-min fairness), so
``k`` messages of ``n`` bytes into one port take ``alpha + k * n * beta``.
"""

from __future__ import annotations

from simulators.collectives import alpha_beta
from simulators.core import LinkSpec

from .model import ITEMSIZE, Engine, Superstep, allreduce_schedule


def _alpha_beta(link: LinkSpec) -> tuple[float, float]:
    return 2 * link.latency, 1 / link.bandwidth


def allreduce_step(step: Superstep, workers: int, link: LinkSpec, algorithm: str = "auto") -> float:
    """Compute, the all-reduce of Thakur, Rabenseifner & Gropp (2005), update. Ring and recursive
    doubling never put two flows on one port of the star, so their textbook time is exact."""
    alpha, beta = _alpha_beta(link)
    schedule = allreduce_schedule(workers, step.statistics_bytes, algorithm)
    if schedule.algorithm not in ("ring", "recursive_doubling"):
        raise ValueError(f"no closed form on a star for {schedule.algorithm!r}")
    nbytes = ITEMSIZE * schedule.count
    comm = alpha_beta(schedule.algorithm, workers, nbytes, alpha, beta, step.reduce_rate)
    return step.compute + comm + step.decide + step.apply


def parameter_server_step(step: Superstep, workers: int, link: LinkSpec, servers: int = 1,
                          touched: float = 1.0) -> float:
    """Every worker sends one shard to every server at once: each flow gets ``1 / max(servers,
    workers)`` of a port (a worker's port carries ``servers`` flows, a server's ``workers``)."""
    alpha, beta = _alpha_beta(link)
    push = touched * step.statistics_bytes / servers
    pull = touched * step.decision_bytes / servers
    share = max(servers, workers)
    return (step.compute + alpha + share * push * beta + step.reduce_rate * workers * push
            + step.decide / servers + alpha + share * pull * beta + step.apply)


def dataflow_step(step: Superstep, workers: int, link: LinkSpec, engine: Engine) -> float:
    """Broadcast, dispatch, compute, aggregate, decide. With ``task_overhead == 0`` every
    transfer of a phase shares the driver's port; gathering at the driver with a task overhead
    of at least one result's transfer time, the results arrive one after another and only the
    last one is on the critical path."""
    alpha, beta = _alpha_beta(link)
    o, n, s, d = engine.task_overhead, workers, step.statistics_bytes, step.decision_bytes
    head = alpha + n * d * beta + step.apply + step.compute
    tail = step.decide
    if engine.reduce == "driver":
        if o == 0:
            return head + alpha + n * s * beta + step.reduce_rate * n * s + tail
        if o < s * beta:
            raise ValueError("no closed form: with 0 < task_overhead < one result's transfer "
                             "time, results overlap partly at the driver")
        return head + engine.tasks_per_partition * n * o + alpha + s * beta \
            + step.reduce_rate * n * s + tail
    if o != 0:
        raise ValueError("no closed form for a shuffle with task_overhead > 0")
    block = s / n
    shuffle = (alpha + (n - 1) * block * beta) if n > 1 else 0.0
    return head + shuffle + step.reduce_rate * n * block + alpha + n * block * beta + tail

