"""A training application as the Pollux artifact measured it (Qiao et al., OSDI'21, section 5.3).

For each of six models (``bert``, ``cifar10``, ``deepspeech2``, ``imagenet``, ``ncf``, ``yolov3``)
the artifact ships, under ``traces/pollux_philly/traces/<model>/``:

* ``placements.csv``: step and all-reduce ("sync") time per placement (replicas per node, e.g.
  ``112`` = one node with 2 replicas and two with 1) and per-GPU batch size, on 4-GPU nodes;
* ``scalability.csv``: the same on 6 to 16 nodes;
* ``validation-<batch size>.csv``: per epoch, the training progress (iterations at the smallest
  batch size), and the gradient's squared norm and variance that give its noise scale.

:meth:`Application.step_time` reads a measured placement (interpolating the batch size) or
interpolates linearly between measured (nodes, replicas, batch size) points;
:meth:`Application.grad_stats` interpolates the gradient statistics between the two nearest
validated batch sizes. The model sizes (epochs to train, a smaller largest per-GPU batch for
``yolov3``) are the artifact's.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import LinearNDInterpolator

from ...data import data_path, list_data, open_text

TRACES = "traces/pollux_philly/traces"
#: Epochs each model trains for, and overrides of its measured batch-size range (the artifact's).
MODELS = {"bert": {"max_epochs": 2}, "cifar10": {"max_epochs": 100}, "ncf": {"max_epochs": 10},
          "imagenet": {"max_epochs": 90}, "deepspeech2": {"max_epochs": 80},
          "yolov3": {"max_epochs": 50, "max_local_bsz": 8}}
GPUS_PER_NODE = 4  # the nodes the artifact measured


def _rows(name: str) -> list[dict[str, float]]:
    with open_text(data_path(name)) as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


@dataclass
class Validation:
    """One validation curve: per epoch, progress and gradient statistics at one batch size."""

    progress: np.ndarray
    iteration: np.ndarray
    grad_sqr: np.ndarray
    grad_var: np.ndarray


@dataclass(eq=False)
class Application:
    """Measured throughput and statistical behaviour of one model (see the module docstring)."""

    name: str
    max_epochs: int
    init_batch_size: int
    max_batch_size: int
    min_local_bsz: int
    max_local_bsz: int
    validation: dict[int, Validation]
    placements: dict[tuple[int, ...], np.ndarray]  # placement -> rows (local_bsz, step, sync)
    _interpolate: LinearNDInterpolator = field(repr=False)
    _measured: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, name: str) -> Application:
        if name not in MODELS:
            raise ValueError(f"unknown application {name!r}; expected one of {sorted(MODELS)}")
        folder = f"{TRACES}/{name}"
        validation = {}
        for path in list_data(folder):
            stem = path.rsplit("/", 1)[-1]
            if stem.startswith("validation-"):
                rows = _rows(path)
                validation[int(stem[len("validation-"):-len(".csv")])] = Validation(
                    *(np.array([r[k] for r in rows])
                      for k in ("progress", "iteration", "grad_sqr", "grad_var")))
        validation = dict(sorted(validation.items()))
        placements: dict[tuple[int, ...], list] = {}
        points, times = [], []
        for row in _rows(f"{folder}/placements.csv"):
            placement = tuple(sorted(int(d) for d in str(int(row["placement"]))))
            placements.setdefault(placement, []).append((row["local_bsz"], row["step_time"],
                                                         row["sync_time"]))
        for placement, rows in placements.items():  # means per (nodes, replicas, batch), as measured
            for bsz, step, sync in rows:
                points.append((len(placement), sum(placement), bsz))
                times.append((step, sync))
        for row in _rows(f"{folder}/scalability.csv"):
            points.append((row["num_nodes"], row["num_replicas"], row["local_bsz"]))
            times.append((row["step_time"], row["sync_time"]))
        keys, inverse = np.unique(np.array(points), axis=0, return_inverse=True)
        mean = np.zeros((len(keys), 2))
        np.add.at(mean, inverse.ravel(), np.array(times))
        mean /= np.bincount(inverse.ravel())[:, None]
        local = np.array([r[0] for rows in placements.values() for r in rows])
        options = MODELS[name]
        return cls(name, options["max_epochs"], min(validation), max(validation),
                   int(local.min()), int(options.get("max_local_bsz", local.max())), validation,
                   {p: _mean_by_batch(rows) for p, rows in placements.items()},
                   LinearNDInterpolator(keys, mean))

    def progress_at(self, epoch: int) -> float:
        """Progress (iterations at the smallest batch size) needed to finish ``epoch`` epochs."""
        if epoch == 0:
            return 0.0
        return min(float(v.progress[epoch - 1]) for v in self.validation.values())

    @property
    def total_progress(self) -> float:
        return self.progress_at(self.max_epochs)

    def _bracket(self, batch_size: float) -> tuple[int, int, float]:
        sizes = list(self.validation)
        if not sizes[0] <= batch_size <= sizes[-1]:
            raise ValueError(f"{self.name}: batch size {batch_size} outside the validated "
                             f"{sizes[0]}..{sizes[-1]}")
        upper = next(s for s in sizes if s >= batch_size)
        lower = max(s for s in sizes if s <= batch_size)
        weight = 0.0 if upper == lower else (batch_size - lower) / (upper - lower)
        return lower, upper, weight

    def _between(self, column: str, batch_size: float, epoch: int) -> float:
        lower, upper, w = self._bracket(batch_size)
        lo, hi = getattr(self.validation[lower], column), getattr(self.validation[upper], column)
        return float((1 - w) * lo[epoch] + w * hi[epoch])

    def grad_stats(self, batch_size: float, epoch: int) -> tuple[float, float]:
        """Squared gradient norm and gradient variance during ``epoch`` at ``batch_size``."""
        return self._between("grad_sqr", batch_size, epoch), self._between("grad_var", batch_size, epoch)

    def iterations(self, batch_size: float, epoch: int) -> float:
        """Steps at ``batch_size`` taken by the end of ``epoch`` (0-based), as validated."""
        return self._between("iteration", batch_size, epoch)

    def step_times(self, placement: tuple[int, ...], local_bsz: np.ndarray) -> np.ndarray:
        """Measured ``(step time, sync time)`` rows, in seconds, of one step with each of
        ``local_bsz`` examples per GPU on ``placement`` (replicas per node): a measured placement
        interpolated in batch size, else interpolated between measured (nodes, replicas, batch)."""
        placement = tuple(sorted(r for r in placement if r))  # node order does not matter
        local_bsz = np.asarray(local_bsz, dtype=float)
        measured = self.placements.get(placement)
        out = np.empty((len(local_bsz), 2))
        inside = np.zeros(len(local_bsz), dtype=bool)
        if measured is not None:
            inside = (measured[0, 0] <= local_bsz) & (local_bsz <= measured[-1, 0])
            for k in (0, 1):
                out[inside, k] = np.interp(local_bsz[inside], measured[:, 0], measured[:, k + 1])
        if not inside.all():
            points = np.column_stack([np.full((~inside).sum(), min(len(placement), 16)),
                                      np.full((~inside).sum(), sum(placement)), local_bsz[~inside]])
            out[~inside] = self._interpolate(points)
        if not np.isfinite(out).all():
            raise ValueError(f"{self.name}: no measurement near placement {placement} with "
                             f"{local_bsz[~np.isfinite(out).all(axis=1)].tolist()} examples per GPU")
        return out

    def step_time(self, placement: tuple[int, ...], local_bsz: float) -> tuple[float, float]:
        """``(step time, sync time)`` of one step; see :meth:`step_times` (remembered)."""
        key = (tuple(sorted(r for r in placement if r)), local_bsz)
        if key not in self._measured:
            step, sync = self.step_times(placement, np.array([local_bsz]))[0]
            self._measured[key] = float(step), float(sync)
        return self._measured[key]

def _mean_by_batch(rows: list[tuple[float, float, float]]) -> np.ndarray:
    """``(local_bsz, step, sync)`` rows averaged per batch size (node orders of one placement)."""
    table = np.array(rows)
    sizes, inverse = np.unique(table[:, 0], return_inverse=True)
    mean = np.zeros((len(sizes), 2))
    np.add.at(mean, inverse, table[:, 1:])
    return np.column_stack([sizes, mean / np.bincount(inverse)[:, None]])


@functools.cache
def load_application(name: str) -> Application:
    """The :class:`Application` of ``name``, read once per process."""
    return Application.load(name)
