"""This machine's parts, measured by running the real executors on an algorithm that computes
nothing, and predictions of real runs from them.

:class:`NullAlgorithm` has statistics and decisions of chosen sizes and no arithmetic, so what
remains of its step is the way's own cost: messages through ``mlsys.comm``'s shared memory, or
Dask's scheduler and TCP connections. :func:`calibrate` fits, per way, the link of the
simulator's :func:`~simulators.dataflow.model.star` (latency and bandwidth) and, for Dask, the
scheduler's seconds per task, to null runs of two sizes (least squares on relative error, through
the simulator itself). :func:`predict` then simulates a real run from its own measured compute
and update times (:func:`superstep_of`) on the fitted machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsys.classic import Algorithm, Coordinator, Partition, Run, split
from mlsys.classic.allreduce import run_allreduce
from mlsys.classic.dataflow import run_dask
from mlsys.classic.paramserver import run_parameter_server
from simulators.core import LinkSpec

from .model import Engine, Simulated, Superstep, simulate

DEFAULT_SIZES = (256, 256 << 10)  # bytes of statistics (and of decisions) in the null runs


class NullAlgorithm(Algorithm):
    """Statistics of ``statistics_bytes`` zeros and decisions of ``decision_bytes`` zeros, no
    arithmetic: a step's time is what the way itself costs."""

    name = "null"

    def __init__(self, statistics_bytes: int, decision_bytes: int, steps: int = 20) -> None:
        for what, value in (("statistics_bytes", statistics_bytes),
                            ("decision_bytes", decision_bytes)):
            if not isinstance(value, int) or value < 8 or value % 8:
                raise ValueError(f"NullAlgorithm: {what} must be a positive multiple of 8, "
                                 f"got {value!r}")
        self.statistics_bytes, self.decision_bytes, self._steps = statistics_bytes, decision_bytes, steps

    @property
    def steps(self) -> int:
        return self._steps

    def partition(self, part: dict[str, np.ndarray]) -> Partition:
        return _NullPartition(self.statistics_bytes // 8)

    def coordinator(self) -> Coordinator:
        return _NullCoordinator(self.decision_bytes // 8)


class _NullPartition(Partition):
    def __init__(self, size: int) -> None:
        self.size = size

    def statistics(self, step: int) -> np.ndarray:
        return np.zeros(self.size)

    def apply(self, decision: np.ndarray, step: int) -> Partition:
        return self


class _NullCoordinator(Coordinator):
    def __init__(self, size: int) -> None:
        self.size = size

    def decide(self, total: np.ndarray, step: int) -> np.ndarray:
        return np.zeros(self.size)

    def result(self) -> None:
        return None


def _per_worker_step(run: Run, kind: str, who: str = "worker") -> float:
    """Seconds per step that one ``who`` node (workers: their mean) spent on ``kind``."""
    nodes = {s.worker for s in run.spans if s.worker.startswith(who)}
    total = sum(s.duration for s in run.spans if s.kind == kind and s.worker in nodes)
    return total / max(len(nodes), 1) / run.steps


def superstep_of(run: Run) -> Superstep:
    """The :class:`Superstep` a run measured: its workers' mean compute and update (apply) time
    per step, its coordinator's (server's, driver's) update time, its mean message sizes. With
    all-reduce every worker decides, so deciding is part of its update."""
    coordinator = "server" if run.way == "parameter server" else "driver"
    return Superstep(compute=_per_worker_step(run, "compute"),
                     statistics_bytes=run.statistics_bytes, decision_bytes=run.decision_bytes,
                     decide=_per_worker_step(run, "update", coordinator),
                     apply=_per_worker_step(run, "update"))


def _model(run: Run) -> tuple[str, dict[str, Any]]:
    """The simulator's way and options for a real run's way."""
    if run.way == "all-reduce":
        return "all-reduce", {"algorithm": "direct" if run.workers > 1 else "auto"}
    if run.way == "parameter server":
        return "parameter server", {}
    if run.way.startswith("Dask"):
        return "dataflow", {"reduce": "shuffle" if "shuffle" in run.way else "driver"}
    raise ValueError(f"no model for a run of way {run.way!r}")


@dataclass
class Machine:
    """Fitted parts of this machine: per real way (``run.way``), the star's link, and the Dask
    scheduler's seconds per task; ``fits`` holds each null run, measured and fitted."""

    links: dict[str, LinkSpec]
    task_overhead: float = 0.0
    fits: list[dict[str, Any]] = field(default_factory=list)

    def __or__(self, other: Machine) -> Machine:
        """Both machines' parts (``other`` wins where both were calibrated)."""
        dask = "Dask" in other.links
        return Machine({**self.links, **other.links},
                       other.task_overhead if dask else self.task_overhead, self.fits + other.fits)

    def simulate(self, run: Run, step: Superstep | None = None, steps: int = 3) -> Simulated:
        """Simulate ``run``'s way on this machine with ``step`` (default: what ``run`` measured)."""
        key = "Dask" if run.way.startswith("Dask") else run.way
        if key not in self.links:
            raise ValueError(f"this machine was not calibrated for {run.way!r}; calibrated: "
                             f"{sorted(self.links)}")
        way, options = _model(run)
        if way == "dataflow":
            options = {"engine": Engine(self.task_overhead, reduce=options["reduce"])}
        return simulate(way, step or superstep_of(run), run.workers, self.links[key],
                        steps=steps, **options)


def predict(run: Run, machine: Machine) -> float:
    """Predicted seconds per step of ``run`` on ``machine``, from the run's own compute and
    update times."""
    return machine.simulate(run).seconds_per_step


def _fit(runs: Sequence[Run], dask: bool) -> tuple[LinkSpec, float]:
    """Latency, bandwidth (and task overhead) minimizing the relative error over ``runs``."""
    from scipy.optimize import least_squares

    measured = np.array([r.seconds_per_step for r in runs])

    def machine(theta: np.ndarray) -> Machine:
        latency, bandwidth, overhead = np.exp(theta[0]), np.exp(theta[1]), \
            (np.exp(theta[2]) if dask else 0.0)
        link = LinkSpec(float(bandwidth), float(latency))
        return Machine({"Dask" if dask else runs[0].way: link}, float(overhead))

    def residuals(theta: np.ndarray) -> np.ndarray:
        m = machine(theta)
        return np.array([predict(r, m) for r in runs]) / measured - 1

    start = [math.log(float(measured.min()) / 8), math.log(1e9)] + ([math.log(1e-4)] if dask else [])
    theta = least_squares(residuals, start, method="trf").x
    fitted = machine(theta)
    key = next(iter(fitted.links))
    return fitted.links[key], fitted.task_overhead


def _rows(runs: Sequence[Run], machine: Machine) -> list[dict[str, Any]]:
    return [{"way": r.way, "statistics KB": r.statistics_bytes / 1e3,
             "measured ms/step": 1e3 * r.seconds_per_step,
             "fitted ms/step": 1e3 * predict(r, machine)} for r in runs]


def calibrate(workers: int = 2, client: Any = None, sizes: Sequence[int] = DEFAULT_SIZES,
              steps: int = 20) -> Machine:
    """Null runs of every size with ``workers`` partitions, each way's parts fitted to them:
    on ``mlsys.comm`` processes (all-reduce and parameter server), or, given a Dask ``client``,
    on its cluster (gathering at the driver and shuffling). Combine the two with ``|``."""
    if len(sizes) < 2:
        raise ValueError(f"calibrate: needs at least 2 sizes to tell latency from bandwidth, "
                         f"got {list(sizes)}")
    parts = split(workers, np.zeros((workers, 1)))
    nulls = [NullAlgorithm(n, n, steps) for n in sizes]
    if client is None:
        groups: dict[str, list[Run]] = {
            "all-reduce": [run_allreduce(a, parts) for a in nulls],
            "parameter server": [run_parameter_server(a, parts) for a in nulls],
        }
    else:
        groups = {"Dask": [run_dask(a, parts, client, reduce=r) for r in ("driver", "shuffle")
                           for a in nulls]}
    machine = Machine({})
    for key, runs in groups.items():
        link, overhead = _fit(runs, dask=key == "Dask")
        machine.links[key] = link
        machine.task_overhead = overhead if key == "Dask" else machine.task_overhead
    machine.fits = [row for runs in groups.values() for row in _rows(runs, machine)]
    return machine
