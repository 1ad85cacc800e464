"""One BSP superstep of a classic distributed algorithm, three ways, on a modelled cluster.

A :class:`Superstep` says what one step of an algorithm costs wherever it runs (each worker's
compute, the bytes of one partition's statistics and of the decision, the coordinator's decide
and the workers' apply, the time to add statistics). Three models of computation run it on a
:class:`~simulators.core.Network` of nodes behind one non-blocking switch (:func:`star`):

* :func:`simulate_allreduce`: workers all-reduce their statistics with a
  :mod:`mlsys.comm` schedule (:func:`simulators.collectives.simulate`) and each decides;
* :func:`simulate_parameter_server`: workers push to ``servers`` server nodes, each owning an
  equal shard of the statistics, and pull the decision back; ``touched`` < 1 models sparse
  models, where a worker pushes and pulls only the keys its data touch (Li et al., OSDI 2014);
* :func:`simulate_dataflow`: a driver broadcasts the decision, a scheduler dispatches tasks one at
  a time (``task_overhead`` each, the cost that makes short stages expensive), and the statistics
  are aggregated at the driver or through a shuffle stage (reduce-by-key: block ``j`` of every
  partition to the worker of partition ``j``, which sums it and sends it to the driver).

Every model is a SimPy program on the same fluid network model (max-min fair links), so
contention at a server's or a driver's port comes out of the simulation, and on uncontended
patterns the simulated time equals the closed forms of :mod:`simulators.dataflow.closed`.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, fields

import simpy

from mlsys.comm.group import SMALL_MESSAGE_BYTES
from mlsys.comm.schedules import ALGORITHMS
from simulators.collectives import simulate as simulate_collective
from simulators.core import LinkSpec, Network, Recorder, Topology

WAYS = ("all-reduce", "parameter server", "dataflow")
REDUCES = ("driver", "shuffle")
ITEMSIZE = 8  # float64 statistics


def _check_number(what: str, value: float, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ValueError(f"{what} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")


def _check_count(what: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Superstep:
    """What one step costs: seconds of ``compute`` per worker, bytes of one partition's
    statistics and of the decision, seconds to ``decide`` (coordinator) and to ``apply``
    (each worker), and ``reduce_rate`` seconds per byte added into a sum."""

    compute: float
    statistics_bytes: float
    decision_bytes: float
    decide: float = 0.0
    apply: float = 0.0
    reduce_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_number(f"Superstep.{f.name}", getattr(self, f.name))


@dataclass(frozen=True)
class Engine:
    """A dataflow engine's own costs: the scheduler's seconds per task (dispatched one at a time),
    tasks per partition per step (Dask here: apply the decision, then compute statistics), and
    whether a shuffle cuts each partition's statistics with one task per block (Dask) or writes
    the blocks itself (Spark's shuffle files)."""

    task_overhead: float = 1e-3
    tasks_per_partition: int = 2
    reduce: str = "driver"
    block_tasks: bool = True

    def __post_init__(self) -> None:
        _check_number("Engine.task_overhead", self.task_overhead)
        _check_count("Engine.tasks_per_partition", self.tasks_per_partition)
        if self.reduce not in REDUCES:
            raise ValueError(f"Engine.reduce must be one of {REDUCES}, got {self.reduce!r}")


@dataclass
class Simulated:
    """Seconds and payload bytes per superstep, and the timeline of every node."""

    way: str
    workers: int
    seconds_per_step: float
    bytes_per_step: float
    recorder: Recorder


def workers_of(n: int) -> list[str]:
    return [f"worker {i}" for i in range(n)]


def star(devices: list[str], link: LinkSpec) -> Topology:
    """``devices`` on one non-blocking switch, each with one full-duplex ``link`` to it (a
    message crosses two links: its latency is twice ``link.latency``)."""
    topology = Topology(f"star({len(devices)})")
    topology.add_switch("switch")
    for d in devices:
        topology.connect(topology.add_device(d), "switch", link)
    return topology


def _check(step: Superstep, workers: int, link: LinkSpec, steps: int) -> None:
    if not isinstance(step, Superstep):
        raise TypeError(f"expected a Superstep, got {type(step).__name__}")
    _check_count("workers", workers)
    _check_count("steps", steps)
    if not isinstance(link, LinkSpec):
        raise TypeError(f"link must be a simulators.core.LinkSpec, got {type(link).__name__}")


def _span(net: Network, name: str, who: str, start: float, kind: str, **args: object) -> None:
    if net.env.now > start:
        net.recorder.record(name, who, start, net.env.now, category=kind, group="nodes", **args)


def allreduce_schedule(workers: int, statistics_bytes: float, algorithm: str = "auto"):  # noqa: ANN201
    """The :mod:`mlsys.comm` schedule of the statistics' all-reduce (``"auto"``: what
    ``ProcessGroup.all_reduce`` picks by size, recursive doubling or ring)."""
    if algorithm == "auto":
        small = statistics_bytes < SMALL_MESSAGE_BYTES
        algorithm = "recursive_doubling" if small else "ring"
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown all-reduce algorithm {algorithm!r}; expected 'auto' or one of "
                         f"{sorted(ALGORITHMS)}")
    return ALGORITHMS[algorithm](workers, max(1, math.ceil(statistics_bytes / ITEMSIZE)))


def simulate_allreduce(step: Superstep, workers: int, link: LinkSpec, *, algorithm: str = "auto",
                       steps: int = 3) -> Simulated:
    """Compute, all-reduce the statistics, decide and apply on every worker; ``steps`` times."""
    _check(step, workers, link, steps)
    names = workers_of(workers)
    recorder = Recorder()
    schedule = allreduce_schedule(workers, step.statistics_bytes, algorithm) if workers > 1 else None
    collective = (simulate_collective(schedule, star(names, link), ITEMSIZE, placement=names,
                                      gamma=step.reduce_rate) if schedule else None)
    comm = collective.time if collective else 0.0
    t = 0.0
    for s in range(steps):
        for w in names:
            recorder.record(f"step {s}", w, t, t + step.compute, category="compute", group="nodes")
            if comm:
                recorder.record(f"step {s}", w, t + step.compute, t + step.compute + comm,
                                category="comm", group="nodes")
            update = step.decide + step.apply
            if update:
                recorder.record(f"step {s}", w, t + step.compute + comm,
                                t + step.compute + comm + update, category="update", group="nodes")
        t += step.compute + comm + step.decide + step.apply
    moved = schedule.bytes_sent(ITEMSIZE) if schedule else 0.0
    return Simulated("all-reduce", workers, t / steps, float(moved), recorder)


def simulate_parameter_server(step: Superstep, workers: int, link: LinkSpec, *, servers: int = 1,
                              touched: float = 1.0, steps: int = 3) -> Simulated:
    """Workers push statistics to ``servers`` shards, each server sums its shard and decides
    its part (``decide / servers``), workers pull the decision and apply it; ``touched`` is the
    fraction of the statistics and decision a worker pushes and pulls (1: dense)."""
    _check(step, workers, link, steps)
    _check_count("servers", servers)
    _check_number("touched", touched, positive=True)
    if touched > 1:
        raise ValueError(f"touched must be a fraction in (0, 1], got {touched!r}")
    names, hosts = workers_of(workers), [f"server {j}" for j in range(servers)]
    net = Network(star(names + hosts, link))
    env = net.env
    push, pull = touched * step.statistics_bytes / servers, touched * step.decision_bytes / servers

    def server(h: str, pushed: list[simpy.Event], decided: simpy.Event,
               delivered: dict[str, simpy.Event]) -> Generator:
        t0 = env.now
        yield env.all_of(pushed)
        _span(net, "wait", h, t0, "wait")
        t0 = env.now
        yield env.timeout(step.reduce_rate * workers * push + step.decide / servers)
        _span(net, "sum and decide", h, t0, "update")
        decided.succeed()
        t0 = env.now
        sends = {w: net.transfer(h, w, pull, name="pull") for w in names}
        for w, send in sends.items():
            send.callbacks.append(lambda _, w=w: delivered[w].succeed())
        yield env.all_of(list(sends.values()))
        _span(net, "pull", h, t0, "comm")

    def worker(w: str, pushed: list[simpy.Event], decided: list[simpy.Event],
               delivered: list[simpy.Event], done: simpy.Event) -> Generator:
        t0 = env.now
        yield env.timeout(step.compute)
        _span(net, "statistics", w, t0, "compute")
        t0 = env.now
        sends = [net.transfer(w, h, push, name="push") for h in hosts]
        yield env.all_of(sends)
        _span(net, "push", w, t0, "comm")
        for event in pushed:
            event.succeed()
        t0 = env.now
        yield env.all_of(decided)
        _span(net, "wait", w, t0, "wait")
        t0 = env.now
        yield env.all_of(delivered)
        _span(net, "pull", w, t0, "comm")
        t0 = env.now
        yield env.timeout(step.apply)
        _span(net, "apply", w, t0, "update")
        done.succeed()

    def run() -> Generator:
        for _ in range(steps):
            pushed = {(h, w): env.event() for h in hosts for w in names}
            delivered = {(h, w): env.event() for h in hosts for w in names}
            decided = {h: env.event() for h in hosts}
            done = [env.event() for _ in names]
            for h in hosts:
                env.process(server(h, [pushed[h, w] for w in names], decided[h],
                                   {w: delivered[h, w] for w in names}))
            for w, d in zip(names, done):
                env.process(worker(w, [pushed[h, w] for h in hosts], list(decided.values()),
                                   [delivered[h, w] for h in hosts], d))
            yield env.all_of(done)

    env.process(run())
    net.run()
    moved = workers * servers * (push + pull)
    return Simulated("parameter server", workers, env.now / steps, moved, net.recorder)


def simulate_dataflow(step: Superstep, workers: int, link: LinkSpec, engine: Engine | None = None, *,
                      steps: int = 3) -> Simulated:
    """The driver broadcasts the decision, the scheduler dispatches every partition's tasks
    (``engine.task_overhead`` each, one after another), each worker applies the decision and
    computes, and the statistics meet at the driver, directly or through a shuffle stage; the
    driver decides. ``steps`` times."""
    engine = engine or Engine()
    _check(step, workers, link, steps)
    names = workers_of(workers)
    net = Network(star(["driver", *names], link))
    env = net.env
    o, k, shuffle = engine.task_overhead, engine.tasks_per_partition, engine.reduce == "shuffle"
    block = step.statistics_bytes / workers

    def dispatch(tasks: int) -> Generator:
        """The scheduler's time to dispatch ``tasks`` tasks, drawn on the driver's row."""
        t0 = env.now
        yield env.timeout(tasks * o)
        _span(net, f"{tasks} tasks", "driver", t0, "overhead")

    def mapper(i: int, received: simpy.Event, launched: simpy.Event,
               finished: simpy.Event) -> Generator:
        w = names[i]
        t0 = env.now
        yield received & launched
        _span(net, "wait", w, t0, "wait")
        t0 = env.now
        yield env.timeout(step.apply)
        _span(net, "apply", w, t0, "update")
        t0 = env.now
        yield env.timeout(step.compute)
        _span(net, "statistics", w, t0, "compute")
        if not shuffle:
            t0 = env.now
            yield net.transfer(w, "driver", step.statistics_bytes, name="result")
            _span(net, "result", w, t0, "comm")
        finished.succeed()

    def reducer(j: int, launched: simpy.Event, finished: simpy.Event) -> Generator:
        w = names[j]
        t0 = env.now
        yield launched
        _span(net, "wait", w, t0, "wait")
        t0 = env.now
        yield env.all_of([net.transfer(names[i], w, block, name="shuffle")
                          for i in range(workers) if i != j])
        yield env.timeout(step.reduce_rate * workers * block)
        yield net.transfer(w, "driver", block, name="result")
        _span(net, "shuffle", w, t0, "comm")
        finished.succeed()

    def driver() -> Generator:
        for _ in range(steps):
            t0 = env.now
            received = [net.transfer("driver", w, step.decision_bytes, name="broadcast")
                        for w in names]
            yield env.all_of(received)
            _span(net, "broadcast", "driver", t0, "comm")
            launched = [env.event() for _ in names]
            finished = [env.event() for _ in names]
            for i in range(workers):
                env.process(mapper(i, received[i], launched[i], finished[i]))
            yield from dispatch((k - 1) * workers)  # the other tasks of every partition first
            for event in launched:
                yield from dispatch(1)
                event.succeed()
            t0 = env.now
            yield env.all_of(finished)
            if shuffle:  # a stage boundary: the reduce tasks start once every map task ended
                yield from dispatch(workers * workers if engine.block_tasks else 0)
                launched = [env.event() for _ in names]
                finished = [env.event() for _ in names]
                for j in range(workers):
                    env.process(reducer(j, launched[j], finished[j]))
                for event in launched:
                    yield from dispatch(1)
                    event.succeed()
                yield env.all_of(finished)
            _span(net, "wait", "driver", t0, "wait")
            t0 = env.now
            summed = 0 if shuffle else workers * step.statistics_bytes
            yield env.timeout(step.reduce_rate * summed + step.decide)
            _span(net, "sum and decide", "driver", t0, "update")

    env.process(driver())
    net.run()
    # a shuffle moves (workers - 1) / workers of every partition's statistics to other workers,
    # then one statistics vector's worth of summed blocks to the driver: as much as gathering
    moved = workers * (step.decision_bytes + step.statistics_bytes)
    return Simulated("dataflow", workers, env.now / steps, moved, net.recorder)


def simulate(way: str, step: Superstep, workers: int, link: LinkSpec, **options: object) -> Simulated:
    """:func:`simulate_allreduce`, :func:`simulate_parameter_server` or :func:`simulate_dataflow`
    by name (one of :data:`WAYS`); ``options`` go to that function."""
    models = {"all-reduce": simulate_allreduce, "parameter server": simulate_parameter_server,
              "dataflow": simulate_dataflow}
    if way not in models:
        raise ValueError(f"unknown way {way!r}; expected one of {WAYS}")
    return models[way](step, workers, link, **options)
