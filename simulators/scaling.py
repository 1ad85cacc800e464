"""Amdahl and Gustafson: a workload with a serial and a parallel part, run on N workers two ways.

:func:`simulate` runs a :class:`Workload` on ``N`` simulated workers in SimPy: worker 0 does the
serial part, then every worker does its share of the parallel part, then each worker but 0 hands
its result to worker 0 over one shared channel (``comm_per_worker`` seconds each, one at a time).
With no communication, equal shares and no stragglers the simulated speedups equal

* Amdahl's law (strong scaling, fixed problem): ``S(N) = 1 / (f + (1 - f) / N)``, ``f`` the serial
  fraction of the one-worker time (G. Amdahl, AFIPS 1967);
* Gustafson's law (weak scaling, the parallel part grows with N): ``S(N) = f + (1 - f) N``, ``f``
  the serial fraction of the time on the N workers (J. Gustafson, CACM 31(5), 1988);

and the knobs show where the laws break: communication (``T = s + p/N + (N-1)c``, best at
``N* = sqrt(p/c)``), load imbalance (the largest share sets the pace) and stragglers.

:class:`EngineWorkload` is the real executor: training steps of the ``mlsys`` engine done by
this process (serial part) and by ``N`` worker processes (parallel part), timed on this machine.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simulators.core import Recorder

SCALINGS = ("strong", "weak")


def _check_seconds(what: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value!r}")


def _check_workers(workers: int) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")


def _check_scaling(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")


@dataclass(frozen=True)
class Workload:
    """Seconds of serial work, of parallel work (on one worker, per worker under weak scaling),
    and of communication per extra worker."""

    serial: float
    parallel: float
    comm_per_worker: float = 0.0

    def __post_init__(self) -> None:
        _check_seconds("Workload.serial", self.serial)
        _check_seconds("Workload.parallel", self.parallel)
        _check_seconds("Workload.comm_per_worker", self.comm_per_worker)
        if self.serial + self.parallel == 0:
            raise ValueError("Workload: serial + parallel must be > 0, got 0 seconds of work")

    @property
    def serial_fraction(self) -> float:
        """``f`` of both laws: the serial share of the time on one worker (strong scaling), which
        is also the serial share of the time on N workers under weak scaling."""
        return self.serial / (self.serial + self.parallel)

    def total_parallel(self, workers: int, scaling: str) -> float:
        """The parallel work of the problem solved on ``workers`` workers."""
        _check_scaling(scaling)
        return self.parallel * (workers if scaling == "weak" else 1)


@dataclass(frozen=True)
class Run:
    """One simulated run: its wall time, the per-worker shares and the event log."""

    workers: int
    time: float
    shares: tuple[float, ...]
    recorder: Recorder


def amdahl(serial_fraction: float, workers: int | np.ndarray) -> Any:
    """Amdahl's strong-scaling speedup ``1 / (f + (1 - f) / N)``."""
    _check_fraction(serial_fraction)
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / np.asarray(workers, dtype=float))


def gustafson(serial_fraction: float, workers: int | np.ndarray) -> Any:
    """Gustafson's weak-scaling (scaled) speedup ``f + (1 - f) N``."""
    _check_fraction(serial_fraction)
    return serial_fraction + (1.0 - serial_fraction) * np.asarray(workers, dtype=float)


def optimal_workers(workload: Workload) -> float:
    """``N`` minimising ``s + p/N + (N-1)c`` under strong scaling: ``sqrt(p / c)``."""
    if workload.comm_per_worker == 0:
        return math.inf
    return math.sqrt(workload.parallel / workload.comm_per_worker)


def _check_fraction(f: float) -> None:
    if not (isinstance(f, (int, float)) and 0 <= f <= 1):
        raise ValueError(f"serial_fraction must be in [0, 1], got {f!r}")


def shares(total: float, workers: int, imbalance: float = 0.0) -> np.ndarray:
    """Split ``total`` seconds over ``workers``: linearly spread so the largest share is
    ``(1 + imbalance)`` times the mean and the smallest ``(1 - imbalance)`` times it."""
    _check_workers(workers)
    if not (isinstance(imbalance, (int, float)) and 0 <= imbalance < 1):
        raise ValueError(f"imbalance must be in [0, 1), got {imbalance!r}")
    spread = np.linspace(-1.0, 1.0, workers) if workers > 1 else np.zeros(1)
    return total / workers * (1.0 + imbalance * spread)


def simulate(workload: Workload, workers: int, scaling: str = "strong", *, imbalance: float = 0.0,
             straggler_prob: float = 0.0, straggler_slowdown: float = 2.0, seed: int = 0) -> Run:
    """Run ``workload`` on ``workers`` simulated workers; see the module docstring.

    Each worker is independently a straggler with probability ``straggler_prob`` (drawn from
    ``seed``): it does its share ``straggler_slowdown`` times slower.
    """
    _check_workers(workers)
    if not (isinstance(straggler_prob, (int, float)) and 0 <= straggler_prob <= 1):
        raise ValueError(f"straggler_prob must be in [0, 1], got {straggler_prob!r}")
    if not (isinstance(straggler_slowdown, (int, float)) and straggler_slowdown >= 1):
        raise ValueError(f"straggler_slowdown must be a number >= 1, got {straggler_slowdown!r}")
    work = shares(workload.total_parallel(workers, scaling), workers, imbalance)
    slow = np.random.default_rng(seed).random(workers) < straggler_prob
    work = np.where(slow, work * straggler_slowdown, work)
    env, recorder = simpy.Environment(), Recorder()
    channel = simpy.Resource(env, capacity=1)
    serial_done = env.event()

    def worker(rank: int) -> Generator:
        name = f"worker {rank}"
        if rank == 0:
            yield env.timeout(workload.serial)
            recorder.record("serial", name, 0.0, env.now, category="serial")
            serial_done.succeed()
        else:
            yield serial_done
        start = env.now
        yield env.timeout(float(work[rank]))
        recorder.record("parallel", name, start, env.now, category="parallel",
                        straggler=bool(slow[rank]))
        if rank > 0 and workload.comm_per_worker > 0:
            with channel.request() as turn:
                yield turn
                start = env.now
                yield env.timeout(workload.comm_per_worker)
                recorder.record("comm", name, start, env.now, category="comm")

    for rank in range(workers):
        env.process(worker(rank))
    env.run()
    return Run(workers, env.now, tuple(float(w) for w in work), recorder)


def speedup(workload: Workload, workers: int, scaling: str = "strong", **effects: Any) -> float:
    """Time of the same problem on one worker over its simulated time on ``workers``."""
    one = Workload(workload.serial, workload.total_parallel(workers, scaling))
    return simulate(one, 1).time / simulate(workload, workers, scaling, **effects).time


def curve(workload: Workload, workers: Sequence[int], scaling: str = "strong",
          **effects: Any) -> list[dict[str, float]]:
    """Rows of ``workers, time, speedup, efficiency`` and the matching law's prediction."""
    law = amdahl if scaling == "strong" else gustafson
    rows = []
    for n in workers:
        t = simulate(workload, n, scaling, **effects).time
        s = speedup(workload, n, scaling, **effects)
        rows.append({"workers": n, "time": t, "speedup": s, "efficiency": s / n,
                     "law": float(law(workload.serial_fraction, n))})
    return rows


# ---------------------------------------------------------------------------------------------
# the real executor: training steps of the mlsys engine over worker processes

_STATE: dict[str, Any] = {}


def _init_worker(batch: int, hidden: int) -> None:
    """Per-process setup, outside the timed region: a model and one batch of digits (kept when
    already there, as in processes forked from a parent that set it up)."""
    import mlsys

    if _STATE.get("config") == (batch, hidden):
        return
    _STATE["config"] = (batch, hidden)
    mlsys.manual_seed(0)
    x, y = mlsys.data.load_digits(split="train")[:batch]
    _STATE["model"] = mlsys.models.mlp(hidden=hidden, depth=2)
    _STATE["batch"] = mlsys.tensor(x), mlsys.tensor(y)


def _init_process(batch: int, hidden: int) -> None:
    """Worker-process setup: one BLAS thread (a worker is one core), then :func:`_init_worker`."""
    from threadpoolctl import threadpool_limits

    _STATE["limits"] = threadpool_limits(1)
    _init_worker(batch, hidden)


def _steps(count: int) -> float:
    """Do ``count`` forward/backward steps of the engine; returns the seconds they took."""
    from mlsys.nn import functional as F

    model, (x, y) = _STATE["model"], _STATE["batch"]
    start = time.perf_counter()
    for _ in range(count):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
    return time.perf_counter() - start


@dataclass(frozen=True)
class EngineWorkload:
    """Engine training steps: ``serial_steps`` on one worker process, then ``parallel_steps``
    (per worker under weak scaling) spread over the worker processes; each step is one forward
    and backward pass of an MLP on a batch of ``batch`` digit images, on one core."""

    serial_steps: int
    parallel_steps: int
    batch: int = 256
    hidden: int = 256

    def __post_init__(self) -> None:
        for name, least in (("serial_steps", 0), ("parallel_steps", 0), ("batch", 1),
                            ("hidden", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise ValueError(f"EngineWorkload.{name} must be an integer >= {least}, got {v!r}")

    def _pool(self, workers: int) -> Any:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        _init_worker(self.batch, self.hidden)  # forked workers inherit it
        pool = mp.get_context(method).Pool(workers, _init_process, (self.batch, self.hidden))
        pool.map(_steps, [1] * workers, chunksize=1)  # warm-up, outside any timed region
        return pool

    def step_time(self, steps: int = 8, repeat: int = 3, workers: int = 1) -> float:
        """Seconds per engine step when ``workers`` processes each do ``steps`` at once (the
        slowest one's time), best of ``repeat`` runs. With more workers than free cores it grows:
        ``workers * step_time(1) / step_time(workers)`` is the number of cores really available."""
        _check_workers(workers)
        with self._pool(workers) as pool:
            return min(max(pool.map(_steps, [steps] * workers, chunksize=1))
                       for _ in range(repeat)) / steps

    def as_workload(self, step_time: float) -> Workload:
        """The simulated twin of this workload, given the measured seconds per step."""
        return Workload(self.serial_steps * step_time, self.parallel_steps * step_time)

    def measure(self, workers: int, scalings: Sequence[str] = SCALINGS,
                repeat: int = 3) -> dict[str, Measurement]:
        """The fastest of ``repeat`` runs per scaling: the serial steps on one worker, then the
        parallel steps in near-equal parts on ``workers`` processes. Process start-up is not timed;
        task dispatch (pickling, pipes) is, as the real communication cost. Each run also keeps
        every worker's seconds per step, so the cores it really had come from the same run."""
        _check_workers(workers)
        scalings = (scalings,) if isinstance(scalings, str) else tuple(scalings)
        for scaling in scalings:
            _check_scaling(scaling)
        times = {}
        with self._pool(workers) as pool:
            for scaling in scalings:
                total = self.parallel_steps * (workers if scaling == "weak" else 1)
                parts = np.diff(np.linspace(0, total, workers + 1).round().astype(int)).tolist()
                runs = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    pool.apply(_steps, (self.serial_steps,))
                    busy = pool.map(_steps, parts, chunksize=1)
                    runs.append(Measurement(time.perf_counter() - start,
                                            tuple(b / n for b, n in zip(busy, parts) if n)))
                times[scaling] = min(runs, key=lambda run: run.seconds)
        return times


@dataclass(frozen=True)
class Measurement:
    """One timed run of an :class:`EngineWorkload`: its wall seconds and, per worker process that
    had parallel steps, its seconds per step while they all ran at once."""

    seconds: float
    step_seconds: tuple[float, ...]

    @property
    def parallel_step(self) -> float:
        """Mean seconds per step of the worker processes during the parallel part."""
        return float(np.mean(self.step_seconds)) if self.step_seconds else math.nan


def effective_cores(alone: Measurement, run: Measurement) -> float:
    """The cores ``run``'s workers really had: how many of them worked at once, times their
    slowdown per step against ``alone`` (a one-worker run). Equal to the worker count on idle
    cores; smaller when the cores are shared, busy or fewer than the workers."""
    return len(run.step_seconds) * alone.parallel_step / run.parallel_step
