"""A schedule run on a modelled network, as the real executor runs it.

:func:`simulate` runs a :class:`~mlsys.comm.schedules.Schedule` the way :mod:`mlsys.comm.executor`
does: each rank goes round by round; in a round, the steps between the same two ranks coalesce into
one message, the rank starts its sends, and it moves on when its sends are delivered and its
receives have arrived (and, for reductions, been reduced: ``gamma`` seconds per byte on the
receiving device). Messages cross a :class:`~simulators.core.Network`, so routes, latencies,
bandwidths and contention on shared links come from the topology.

On a cluster of nodes, :func:`mlsys.comm.schedules.hierarchical_ring` (reduce-scatter inside each
node, one ring per local rank across nodes, all-gather inside each node; the "2D ring" of e.g. Jia
et al., arXiv:1807.11205, 2018) crosses the slow inter-node network in ``2(N-1)`` rounds instead of
``2(Nk-1)``, on ``k`` NICs at once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from mlsys.comm.schedules import Schedule
from simulators.core import Network, Recorder, Topology


@dataclass(frozen=True)
class CollectiveRun:
    """A simulated collective: its time, event log and bytes carried per link."""

    schedule: Schedule
    time: float
    recorder: Recorder
    bytes_on: dict[str, float]


def simulate(schedule: Schedule, topology: Topology, itemsize: int = 4, *,
             placement: Sequence[str] | None = None, gamma: float = 0.0) -> CollectiveRun:
    """Run ``schedule`` on ``topology`` with rank ``r`` on device ``placement[r]`` (default: the
    topology's devices in order); elements are ``itemsize`` bytes."""
    if not isinstance(itemsize, int) or itemsize < 1:
        raise ValueError(f"itemsize must be a positive integer number of bytes, got {itemsize!r}")
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number of seconds per byte >= 0, got {gamma!r}")
    devices = _placement(schedule, topology, placement)
    net = Network(topology)
    env = net.env
    messages = schedule.messages()
    by_rank: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for key in messages:
        rnd, src, dst = key
        by_rank[(src, rnd)].append(key)
        by_rank[(dst, rnd)].append(key)
    sent = {key: env.event() for key in messages}
    reduced = {key: env.event() for key in messages}

    def deliver(key: tuple[int, int, int]) -> Generator:
        rnd, src, dst = key
        steps = messages[key]
        nbytes = itemsize * sum(schedule.chunk_size(s.chunk) for s in steps)
        yield net.transfer(devices[src], devices[dst], nbytes, name=f"round {rnd}", round=rnd)
        sent[key].succeed()
        if steps[0].op == "reduce" and gamma > 0:
            yield net.compute(devices[dst], gamma * nbytes, name="reduce", round=rnd)
        reduced[key].succeed()

    def rank(r: int) -> Generator:
        for rnd in range(schedule.num_rounds):
            waits = []
            for key in by_rank.get((r, rnd), ()):
                if key[1] == r:
                    env.process(deliver(key))
                    waits.append(sent[key])
                else:
                    waits.append(reduced[key])
            yield env.all_of(waits)

    for r in range(schedule.world_size):
        env.process(rank(r))
    net.run()
    return CollectiveRun(schedule, env.now, net.recorder, dict(net.bytes_on))


def _placement(schedule: Schedule, topology: Topology,
               placement: Sequence[str] | None) -> list[str]:
    p = schedule.world_size
    devices = list(topology.devices[:p] if placement is None else placement)
    if len(devices) != p:
        raise ValueError(f"{schedule.algorithm} on {p} ranks needs {p} devices, but "
                         f"{topology.name} {'has' if placement is None else 'was given'} "
                         f"{len(devices)}")
    unknown = [d for d in devices if d not in topology.devices]
    repeated = sorted({d for d in devices if devices.count(d) > 1})
    if unknown or repeated:
        raise ValueError(f"placement must name {p} distinct devices of {topology.name}; "
                         f"unknown {unknown}, repeated {repeated}")
    return devices
