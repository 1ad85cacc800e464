"""A parameter server with BSP, ASP and SSP workers, stragglers and shared server links.

Each worker pulls the parameters, computes a gradient, pushes it; pulls and pushes share the
server's one network link (so they queue). With ``servers`` servers each owns a slice of the
parameters and a link of its own: a pull or push moves ``1/servers`` of the model over every
server's link at once (the layout of :func:`mlsys.comm.ps.sharded_parameter_server`, which this
predicts). Consistency is one rule, stale synchronous parallel (Ho et al., NIPS 2013): a worker may start
iteration ``k`` only once every worker has finished iteration ``k - staleness - 1``. BSP is
staleness 0, ASP unbounded staleness. The staleness of an iteration is how many iterations the
slowest worker lags behind it when it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from simulators.core import Recorder

MODES = ("bsp", "asp", "ssp")


@dataclass(frozen=True)
class ParameterServerConfig:
    """Workers, consistency, per-iteration compute time and the server link.

    ``stragglers`` workers run ``slowdown`` times slower; every compute time is also multiplied by
    lognormal noise with coefficient of variation ``jitter``. ``iteration_times`` (one sequence
    per worker, cycled: measured, or from a trace) replaces all three. With ``iterations`` every
    worker runs that many iterations and the run lasts until the last one ends; otherwise the
    workers run for ``duration`` seconds.
    """

    workers: int = 4
    mode: str = "bsp"
    staleness: int = 2
    duration: float = 2.0
    compute_time: float = 0.1
    jitter: float = 0.1
    stragglers: int = 0
    slowdown: float = 3.0
    model_bytes: float = 100e6
    bandwidth: float = 12.5e9
    latency: float = 5e-6
    seed: int = 0
    servers: int = 1
    iteration_times: tuple[tuple[float, ...], ...] = ()
    iterations: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if not 0 <= self.stragglers <= self.workers:
            raise ValueError(f"stragglers must be in [0, workers={self.workers}], got {self.stragglers}")
        for name in ("duration", "compute_time", "slowdown", "model_bytes", "bandwidth"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.jitter < 0 or self.latency < 0 or self.staleness < 0:
            raise ValueError("jitter, latency and staleness must be >= 0")
        if not isinstance(self.servers, int) or self.servers < 1:
            raise ValueError(f"servers must be a positive integer, got {self.servers!r}")
        if self.iteration_times and (len(self.iteration_times) != self.workers or not all(
                len(t) and min(t) >= 0 for t in self.iteration_times)):
            raise ValueError(f"iteration_times must give a non-empty sequence of non-negative "
                             f"seconds for each of the {self.workers} workers")
        if self.iterations is not None and (not isinstance(self.iterations, int)
                                            or self.iterations < 1):
            raise ValueError(f"iterations must be None or a positive integer, got "
                             f"{self.iterations!r}")

    @property
    def bound(self) -> float:
        """The staleness bound the mode enforces."""
        return {"bsp": 0, "asp": math.inf, "ssp": self.staleness}[self.mode]


@dataclass
class ParameterServerResult:
    makespan: float
    updates: int
    staleness: list[int]
    wait_time: float
    recorder: Recorder

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.makespan

    @property
    def mean_staleness(self) -> float:
        return float(np.mean(self.staleness))


def simulate_parameter_server(config: ParameterServerConfig | None = None) -> ParameterServerResult:
    """Run every worker for ``config.duration`` simulated seconds (or ``config.iterations``
    iterations); deterministic for ``config.seed``.

    Only updates that reach the server within the duration count.
    """
    cfg = config or ParameterServerConfig()
    sigma = math.sqrt(math.log1p(cfg.jitter ** 2))
    env = simpy.Environment()
    links = [simpy.Resource(env, capacity=1) for _ in range(cfg.servers)]
    recorder = Recorder()
    clock = [0] * cfg.workers  # iterations each worker has finished
    progress = [env.event()]
    staleness: list[int] = []
    waited = [0.0]
    transfer = cfg.latency + cfg.model_bytes / cfg.servers / cfg.bandwidth

    def use_link(w: int, s: int, what: str):
        with links[s].request() as turn:
            yield turn
            t0 = env.now
            yield env.timeout(transfer)
            name = "server link" if cfg.servers == 1 else f"server {s} link"
            recorder.record(what, name, t0, env.now, category=what, group="server", worker=w)

    def use_links(w: int, what: str):  # every server's slice at once; done when all are
        yield env.all_of([env.process(use_link(w, s, what)) for s in range(cfg.servers)])

    def compute_time(w: int, k: int, rng: np.random.Generator) -> float:
        if cfg.iteration_times:
            times = cfg.iteration_times[w]
            return times[k % len(times)]
        slow = cfg.slowdown if w < cfg.stragglers else 1.0
        return cfg.compute_time * slow * rng.lognormal(-sigma ** 2 / 2, sigma)

    def worker(w: int):
        rng = np.random.default_rng([cfg.seed, w])
        k = 0
        while cfg.iterations is None or k < cfg.iterations:
            t0 = env.now
            while k - min(clock) > cfg.bound:
                yield progress[0]
            if env.now > t0:
                recorder.record("wait", f"worker {w}", t0, env.now, category="wait", group="workers")
                waited[0] += env.now - t0
            staleness.append(k - min(clock))
            yield from use_links(w, "pull")
            t0 = env.now
            yield env.timeout(compute_time(w, k, rng))
            recorder.record(f"iter {k}", f"worker {w}", t0, env.now, category="compute", group="workers")
            yield from use_links(w, "push")
            clock[w] += 1
            progress[0].succeed()
            progress[0] = env.event()
            k += 1

    workers = [env.process(worker(w)) for w in range(cfg.workers)]
    if cfg.iterations is None:
        env.run(until=cfg.duration)
    else:
        env.run(until=env.all_of(workers))
    return ParameterServerResult(env.now, sum(clock), staleness, waited[0], recorder)
