"""Checkpointing under failures: the wall time of a job, and the interval that minimizes it.

A job needs ``work`` seconds of computation. It saves a checkpoint after every ``interval``
seconds of work, the last one included (taking ``cost`` seconds); failures arrive as a Poisson
process with mean time between failures ``mtbf``. A failure loses the work since the last
complete checkpoint and costs ``restart`` seconds (relaunch and load) before the job carries on;
a failure during a checkpoint or a restart loses it too. :func:`simulate_checkpointing` runs this
on SimPy (a failure is an interrupt of the job's process) and averages over runs.

Closed forms for the same model: the expected wall time (Daly, "A higher order estimate of the
optimum checkpoint interval for restart dumps", FGCS 2006, eq. 7)
``T(tau) = M e^(R/M) (e^((tau + C)/M) - 1) W / tau``; Young's first-order optimum
(CACM 1974) ``tau = sqrt(2 C M)``; and Daly's higher-order one,
``sqrt(2 C M) (1 + sqrt(C / 2M) / 3 + (C / 2M) / 9) - C`` for ``C < 2M`` (else ``M``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy
from scipy.optimize import minimize_scalar

__all__ = ["CheckpointConfig", "CheckpointRun", "simulate_checkpointing", "expected_time",
           "young_interval", "daly_interval", "optimal_interval"]


@dataclass(frozen=True)
class CheckpointConfig:
    """A job, its checkpoint interval and cost, its restart cost and the machines' failure rate
    (all in seconds)."""

    work: float
    interval: float
    cost: float
    restart: float
    mtbf: float

    def __post_init__(self) -> None:
        for name in ("work", "interval", "mtbf"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"checkpointing: {name} must be a positive number of seconds, "
                                 f"got {value!r}")
        for name in ("cost", "restart"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"checkpointing: {name} must be a non-negative number of "
                                 f"seconds, got {value!r}")


@dataclass(frozen=True)
class CheckpointRun:
    """Mean over runs: wall time, failures, and seconds of work lost to them."""

    config: CheckpointConfig
    wall: float
    failures: float
    lost: float
    runs: int

    @property
    def efficiency(self) -> float:
        """Useful work as a share of the wall time."""
        return self.config.work / self.wall


def _one_run(cfg: CheckpointConfig, rng: np.random.Generator) -> tuple[float, int, float]:
    env = simpy.Environment()
    failures, lost = [0], [0.0]

    def job():  # noqa: ANN202 - a SimPy process
        done = 0.0
        while done < cfg.work:
            segment = min(cfg.interval, cfg.work - done)
            start = env.now
            try:
                yield env.timeout(segment + cfg.cost)  # work, then its checkpoint
                done += segment
            except simpy.Interrupt:
                failures[0] += 1
                lost[0] += min(env.now - start, segment)
                yield from recover()

    def recover():  # noqa: ANN202 - a restart that a failure interrupts starts over
        while True:
            try:
                yield env.timeout(cfg.restart)
                return
            except simpy.Interrupt:
                failures[0] += 1

    process = env.process(job())

    def failures_arrive():  # noqa: ANN202
        while process.is_alive:
            yield env.timeout(rng.exponential(cfg.mtbf))
            if process.is_alive:
                process.interrupt()

    env.process(failures_arrive())
    env.run(until=process)
    return env.now, failures[0], lost[0]


def simulate_checkpointing(config: CheckpointConfig, runs: int = 200, seed: int = 0) -> CheckpointRun:
    """The job ``runs`` times with independent failures (deterministic for ``seed``)."""
    if not isinstance(runs, int) or runs < 1:
        raise ValueError(f"checkpointing: runs must be a positive integer, got {runs!r}")
    rng = np.random.default_rng(seed)
    results = np.array([_one_run(config, rng) for _ in range(runs)])
    wall, failures, lost = results.mean(axis=0)
    return CheckpointRun(config, float(wall), float(failures), float(lost), runs)


def expected_time(work: float, interval: float, cost: float, restart: float, mtbf: float) -> float:
    """Daly's exact expectation of the wall time (a checkpoint after every interval)."""
    m = mtbf
    return m * math.exp(restart / m) * math.expm1((interval + cost) / m) * work / interval


def young_interval(cost: float, mtbf: float) -> float:
    """Young's first-order optimum: ``sqrt(2 C M)``."""
    return math.sqrt(2 * cost * mtbf)


def daly_interval(cost: float, mtbf: float) -> float:
    """Daly's higher-order optimum (``M`` when the checkpoint costs ``2M`` or more)."""
    if cost >= 2 * mtbf:
        return mtbf
    x = cost / (2 * mtbf)
    return math.sqrt(2 * cost * mtbf) * (1 + math.sqrt(x) / 3 + x / 9) - cost


def optimal_interval(cost: float, restart: float, mtbf: float) -> float:
    """The interval minimizing :func:`expected_time` (numerically; it does not depend on the
    amount of work)."""
    if cost <= 0:
        raise ValueError(f"checkpointing: the optimum needs a positive checkpoint cost, got {cost!r}")
    best = minimize_scalar(lambda tau: expected_time(1.0, tau, cost, restart, mtbf),
                           bounds=(cost * 1e-3, 50 * mtbf), method="bounded",
                           options={"xatol": 1e-9 * mtbf})
    return float(best.x)
