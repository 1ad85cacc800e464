"""An input pipeline as producers and a consumer on shared cores: when do loader workers pay off?

The model is the real ``mlsys.data.DataLoader`` drawn as processes on SimPy. Worker ``w`` loads
batches ``w, w + N, ...`` (CPU work: read, transform, collate, pickle), each after a credit, starting
with ``prefetch_factor`` of them; the training process takes batch ``k`` from worker ``k mod N``,
returns a credit, unpickles it and runs the training step. With no workers the training process
loads each batch itself. Every piece of CPU work runs on :class:`SharedCores`: ``cores`` cores
time-sliced equally between whatever is runnable (processor sharing: a time-slicing scheduler
seen from afar, Kleinrock 1976); a process blocked on a pipe uses no core. On a shared machine,
``cores`` is what this pipeline gets (:func:`measure_available_cores`), which may be a fraction.

The work per batch is measured, not assumed: :func:`measure_costs` times each part on the real
engine in one process, as CPU time (the work itself, whatever else the machine is doing), and
:func:`simulate_loader` replays those samples. :func:`step_time_bound` is the closed form the
simulation approaches: the slowest of the training process, the workers together, and the cores.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from mlsys.data import DataLoader, Dataset
from mlsys.data.bench import steady_step
from mlsys.data.collate import gather
from mlsys.tensor import Tensor

from .core.recorder import Recorder

__all__ = ["LoaderCosts", "SharedCores", "PipelineRun", "measure_costs", "simulate_loader",
           "step_time_bound", "measure_available_cores"]


@dataclass(frozen=True)
class LoaderCosts:
    """CPU seconds per batch of each part of the pipeline, one sample per measured batch."""

    load: tuple[float, ...]  # read, transform and collate a batch (in whichever process loads it)
    send: tuple[float, ...]  # a worker pickles it
    receive: tuple[float, ...]  # the training process unpickles it into Tensors
    step: tuple[float, ...]  # forward, backward and update

    def __post_init__(self) -> None:
        for name in ("load", "send", "receive", "step"):
            values = getattr(self, name)
            if not values or not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"LoaderCosts: {name} must be a non-empty list of finite seconds >= 0, "
                                 f"got {values!r}")

    @classmethod
    def constant(cls, load: float, step: float, send: float = 0.0, receive: float = 0.0) -> LoaderCosts:
        """Costs without spread (for closed-form checks and what-if questions)."""
        return cls((load,), (send,), (receive,), (step,))

    def mean(self, part: str) -> float:
        return float(np.mean(getattr(self, part)))

    @property
    def worker(self) -> float:
        """Mean CPU seconds a worker spends per batch."""
        return self.mean("load") + self.mean("send")

    @property
    def trainer(self) -> float:
        """Mean CPU seconds the training process spends per batch when workers load."""
        return self.mean("receive") + self.mean("step")


def measure_costs(dataset: Dataset, step: Callable[[Tensor, Tensor], Any], *, batch_size: int = 64,
                  batches: int = 8, seed: int = 0) -> LoaderCosts:
    """Time each part of the pipeline on ``batches`` real batches, in CPU seconds of this process."""
    if batches < 1:
        raise ValueError(f"measure_costs: batches must be a positive integer, got {batches!r}")
    order = DataLoader(dataset, batch_size, shuffle=True, drop_last=True, seed=seed).batches()
    if len(order) < batches:
        raise ValueError(f"measure_costs: the dataset has {len(order)} batches of {batch_size}, "
                         f"asked for {batches}")
    samples: dict[str, list[float]] = {"load": [], "send": [], "receive": [], "step": []}
    clock = time.process_time
    step(*(Tensor(c) for c in gather(dataset, order[-1])))  # warm-up: first-call allocations
    for indices in order[:batches]:
        t0 = clock()
        columns = gather(dataset, indices)
        t1 = clock()
        payload = pickle.dumps((0, columns, None), protocol=pickle.HIGHEST_PROTOCOL)
        t2 = clock()
        tensors = tuple(Tensor(c) for c in pickle.loads(payload)[1])
        t3 = clock()
        step(*tensors)
        t4 = clock()
        for part, seconds in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            samples[part].append(seconds)
    return LoaderCosts(**{part: tuple(values) for part, values in samples.items()})


class SharedCores:
    """``cores`` cores (a fraction of one counts) shared equally by the runnable jobs: each job
    progresses at ``min(1, cores / jobs)`` CPU seconds per second."""

    def __init__(self, env: simpy.Environment, cores: float) -> None:
        if not (isinstance(cores, (int, float)) and math.isfinite(cores) and cores > 0):
            raise ValueError(f"SharedCores: cores must be a finite number > 0, got {cores!r}")
        self.env, self.cores = env, float(cores)
        self._left: dict[simpy.Event, float] = {}  # each job's remaining CPU seconds
        self._since = env.now
        self._generation = 0

    def _rate(self) -> float:
        return min(1.0, self.cores / len(self._left))

    def _advance(self) -> None:
        if self._left:
            done = (self.env.now - self._since) * self._rate()
            for job in self._left:
                self._left[job] -= done
        self._since = self.env.now

    def _schedule(self) -> None:
        self._generation += 1
        if self._left:
            generation = self._generation
            wake = self.env.timeout(max(0.0, min(self._left.values())) / self._rate())
            wake.callbacks.append(lambda _: self._finish(generation))

    def _finish(self, generation: int) -> None:
        if generation != self._generation:
            return  # the set of jobs changed since this wake-up was planned
        self._advance()
        first = min(self._left.values())
        for job in [job for job, left in self._left.items() if left <= first + 1e-12]:
            del self._left[job]
            job.succeed()
        self._schedule()

    def run(self, seconds: float) -> simpy.Event:
        """An event that fires when ``seconds`` of CPU work, started now, is done."""
        self._advance()
        job = self.env.event()
        self._left[job] = float(seconds)
        self._schedule()
        return job


@dataclass
class PipelineRun:
    """One simulated run: when each training step ended, and every span of work and waiting."""

    ends: np.ndarray
    recorder: Recorder

    def steady_step(self, warmup: int = 3) -> float:
        """Seconds per step once the pipeline is full (the same measure as the real runs)."""
        return steady_step(self.ends.tolist(), warmup)


def simulate_loader(costs: LoaderCosts, num_workers: int, *, cores: float, prefetch_factor: int = 2,
                    batches: int = 60, seed: int = 0) -> PipelineRun:
    """Run ``batches`` training steps fed by ``num_workers`` workers on ``cores`` shared cores.

    The epoch is longer than the run, as when a real run is timed over its first steps: workers
    keep loading ahead until the last step ends.
    """
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"simulate_loader: num_workers must be an integer >= 0, got {num_workers!r}")
    if not isinstance(prefetch_factor, int) or prefetch_factor < 1:
        raise ValueError("simulate_loader: prefetch_factor must be a positive integer, "
                         f"got {prefetch_factor!r}")
    if not isinstance(batches, int) or batches < 1:
        raise ValueError(f"simulate_loader: batches must be a positive integer, got {batches!r}")
    env = simpy.Environment()
    cpu = SharedCores(env, cores)
    rng = np.random.default_rng(seed)
    streams = {part: _shuffled_passes(getattr(costs, part), rng)
               for part in ("load", "send", "receive", "step")}
    draw = lambda part: next(streams[part])
    recorder = Recorder()
    ends: list[float] = []

    def work(name: str, resource: str, seconds: float, category: str):
        start = env.now
        yield cpu.run(seconds)
        recorder.record(name, resource, start, env.now, category=category, group="pipeline")

    def trainer_alone():
        for k in range(batches):
            yield from work(f"load {k}", "trainer", draw("load"), "load")
            yield from work(f"step {k}", "trainer", draw("step"), "compute")
            ends.append(env.now)

    def worker(w: int, ready: simpy.Store, credits: simpy.Container):
        for k in itertools.count(w, num_workers):
            yield credits.get(1)
            yield from work(f"load {k}", f"worker {w}", draw("load") + draw("send"), "load")
            yield ready.put(k)

    def trainer(ready: list[simpy.Store], credits: list[simpy.Container]):
        for k in range(batches):
            w, start = k % num_workers, env.now
            yield ready[w].get()
            if env.now > start:
                recorder.record("wait", "trainer", start, env.now, category="wait", group="pipeline")
            yield credits[w].put(1)
            yield from work(f"step {k}", "trainer", draw("receive") + draw("step"), "compute")
            ends.append(env.now)

    if num_workers == 0:
        env.run(env.process(trainer_alone()))
    else:
        ready = [simpy.Store(env) for _ in range(num_workers)]
        credits = [simpy.Container(env, init=prefetch_factor) for _ in range(num_workers)]
        for w in range(num_workers):
            env.process(worker(w, ready[w], credits[w]))
        env.run(env.process(trainer(ready, credits)))
    return PipelineRun(np.array(ends), recorder)


def _shuffled_passes(samples: tuple[float, ...], rng: np.random.Generator) -> Iterator[float]:
    """The samples over and over, each pass in a fresh random order: every pass has exactly the
    samples' mean, so a run's costs average to the measured ones (drawing with replacement would
    let a short run sit a few percent off the closed form by chance)."""
    while True:
        yield from (float(samples[i]) for i in rng.permutation(len(samples)))


def step_time_bound(costs: LoaderCosts, num_workers: int, cores: float) -> float:
    """The least seconds per step: with no workers the training process does everything in turn;
    with workers, the slowest of the training process, the workers together and the cores."""
    if num_workers == 0:
        return costs.mean("load") + costs.mean("step")
    return max(costs.trainer, costs.worker / num_workers, (costs.trainer + costs.worker) / cores)


def _spin(seconds: float, report: Any) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        pass
    report.send((time.process_time() - cpu) / (time.perf_counter() - wall))
    report.close()


def measure_available_cores(seconds: float = 0.3) -> float:
    """The cores this process's children get now: as many processes as this process may run on
    spin together for ``seconds``; the sum of the CPU share each got (the core count on an idle
    machine, less on a shared one)."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"measure_available_cores: seconds must be a finite number > 0, got {seconds!r}")
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else None)
    pipes = [context.Pipe(duplex=False) for _ in range(count)]
    spinners = [context.Process(target=_spin, args=(seconds, send), daemon=True) for _, send in pipes]
    for process in spinners:
        process.start()
    for _, send in pipes:
        send.close()  # the children hold theirs: a child that dies ends its pipe
    try:
        shares = [receive.recv() for receive, _ in pipes]
    except EOFError:
        raise RuntimeError("measure_available_cores: a spinning process died before reporting") from None
    finally:
        for process, (receive, _) in zip(spinners, pipes):
            process.join()
            receive.close()
    return float(min(count, sum(shares)))
