"""A SimPy network on a :class:`~simulators.core.topology.Topology`: alpha-beta links shared fairly.

A message of ``n`` bytes from ``src`` to ``dst`` first waits the route's latency (alpha, the sum
of its links' latencies), then streams its bytes. While it streams it is a *flow* on every link of
its route, and flows share links max-min fairly (progressive filling, the fluid model of TCP and
InfiniBand congestion control): on an idle route a message takes exactly ``alpha + n * beta``
with ``beta = 1 / bottleneck bandwidth``; two flows on one link each get half of it. Rates are
recomputed whenever a flow starts or ends, so the timing is exact for the fluid model and
deterministic. Devices are SimPy resources that run one compute span at a time.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import simpy

from .recorder import Recorder
from .topology import Link, Topology


@dataclass(eq=False)
class _Flow:
    links: tuple[Link, ...]
    nbytes: float
    done: simpy.Event
    remaining: float = 0.0
    rate: float = 0.0
    finish: float = math.inf


class Network:
    """Devices and links of ``topology`` as SimPy resources in ``env``; spans go to ``recorder``."""

    def __init__(self, topology: Topology, env: simpy.Environment | None = None,
                 recorder: Recorder | None = None) -> None:
        self.topology = topology
        self.env = env or simpy.Environment()
        self.recorder = recorder if recorder is not None else Recorder()
        self.devices = {d: simpy.Resource(self.env, capacity=1) for d in topology.devices}
        self.bytes_on: dict[str, float] = {}
        self._flows: list[_Flow] = []
        self._last_update = 0.0
        self._generation = 0

    def transfer(self, src: str, dst: str, nbytes: float, name: str = "send",
                 **args: object) -> simpy.Process:
        """A process that delivers ``nbytes`` from ``src`` to ``dst``; yield it to wait."""
        if not (isinstance(nbytes, (int, float)) and math.isfinite(nbytes) and nbytes >= 0):
            raise ValueError(f"transfer {src}->{dst}: nbytes must be a finite number >= 0, "
                             f"got {nbytes!r}")
        route = self.topology.route(src, dst)
        return self.env.process(self._transfer(route, float(nbytes), name, args))

    def compute(self, device: str, seconds: float, name: str = "compute",
                category: str = "compute", **args: object) -> simpy.Process:
        """A process that occupies ``device`` for ``seconds`` (queuing behind earlier work)."""
        if device not in self.devices:
            raise KeyError(f"unknown device {device!r}; devices are {sorted(self.devices)[:8]}")
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"compute on {device}: seconds must be a finite number >= 0, "
                             f"got {seconds!r}")
        return self.env.process(self._compute(device, float(seconds), name, category, args))

    def run(self, until: float | None = None) -> float:
        """Run the simulation (to completion by default); returns the simulated time."""
        self.env.run(until=until)
        return self.env.now

    def _compute(self, device: str, seconds: float, name: str, category: str,
                 args: dict) -> Generator:
        with self.devices[device].request() as slot:
            yield slot
            start = self.env.now
            yield self.env.timeout(seconds)
            self.recorder.record(name, device, start, self.env.now, category=category,
                                 group="devices", **args)

    def _transfer(self, route: tuple[Link, ...], nbytes: float, name: str,
                  args: dict) -> Generator:
        start = self.env.now
        yield self.env.timeout(sum(link.latency for link in route))
        if nbytes > 0:
            flow = _Flow(route, nbytes, self.env.event(), remaining=nbytes)
            self._advance()
            self._flows.append(flow)
            for link in route:
                self.bytes_on[link.name] = self.bytes_on.get(link.name, 0.0) + nbytes
            self._reschedule()
            yield flow.done
        src, dst = route[0].src, route[-1].dst
        self.recorder.record(name, f"{src}->{dst}", start, self.env.now, category="comm",
                             group="network", bytes=nbytes, **args)

    def _advance(self, target: float | None = None) -> None:
        """Move every flow forward to now at its current rate; finish those that are done.

        On a wake-up, ``target`` is the projected finish time that was due, so flows finishing
        then complete even when float rounding put ``now`` a hair away from it.
        """
        now = self.env.now
        dt, self._last_update = now - self._last_update, now
        due = now if target is None else max(now, target)
        still = []
        for f in self._flows:
            if f.finish <= due:
                f.remaining = 0.0
                f.done.succeed()
            else:
                f.remaining -= f.rate * dt
                still.append(f)
        self._flows = still

    def _reschedule(self) -> None:
        """Max-min fair rates for the active flows, and a wake-up at the next completion."""
        _max_min_rates(self._flows)
        self._generation += 1
        if self._flows:
            now = self.env.now
            for f in self._flows:
                f.finish = now + max(f.remaining, 0.0) / f.rate
            target = min(f.finish for f in self._flows)
            self.env.process(self._wake(self._generation, target))

    def _wake(self, generation: int, target: float) -> Generator:
        yield self.env.timeout(max(target - self.env.now, 0.0))
        if generation == self._generation:  # no flow started or ended meanwhile
            self._advance(target)
            self._reschedule()


def _max_min_rates(flows: list[_Flow]) -> None:
    """Progressive filling: raise all rates together; when links saturate, freeze their flows.

    Every link whose fair share equals the current minimum saturates in the same pass, so a set
    of flows that do not contend (a ring) is settled in one pass instead of one per flow.
    """
    capacity: dict[str, float] = {}
    users: dict[str, list[_Flow]] = {}
    for f in flows:
        f.rate = -1.0  # not frozen yet
        for link in f.links:
            if link.name not in capacity:
                capacity[link.name] = link.bandwidth
                users[link.name] = []
            users[link.name].append(f)
    active = {name: len(fs) for name, fs in users.items()}
    while active:
        share = min(capacity[n] / k for n, k in active.items())
        limit = share * (1 + 1e-12)
        for n in [n for n, k in active.items() if capacity[n] / k <= limit]:
            for f in users[n]:
                if f.rate < 0:
                    f.rate = share
                    for link in f.links:
                        capacity[link.name] -= share
                        active[link.name] -= 1
        active = {n: k for n, k in active.items() if k > 0}
