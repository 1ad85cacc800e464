"""Goodput = throughput x statistical efficiency (Pollux, Qiao et al. OSDI'21, section 3.1).

Statistical efficiency comes from the gradient noise scale: with per-example gradient variance
``var`` and squared gradient norm ``sqr`` measured at the smallest batch size ``M0``, one step at
batch size ``M`` makes the progress of ``gain = (var + sqr) / (var / s + sqr)`` steps at ``M0``,
where ``s = M / M0``; so efficiency is ``gain / s`` (1 at ``M0``, falling towards ``1 / s`` as the
batch outgrows the noise scale). Goodput, in steps-at-``M0`` per second, is ``gain / step time``.

A batch of ``M`` examples on ``r`` replicas runs as ``atomic`` examples per GPU for
``accum + 1`` micro-steps (gradient accumulation), the first ``accum`` without synchronizing:
``step time = T(atomic) + accum x (T(atomic) - sync(atomic))``, measured per placement
(:meth:`~.application.Application.step_time`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .application import GPUS_PER_NODE, Application

CANDIDATES = 50  # batch sizes tried per allocation, geometric (as the Pollux agent does)


def gain(batch_size: np.ndarray | float, init_batch_size: int, grad_sqr: float, grad_var: float):
    """Steps at the smallest batch size that one step at ``batch_size`` is worth."""
    scale = np.asarray(batch_size, dtype=float) / init_batch_size
    return (grad_var + grad_sqr) / (grad_var / scale + grad_sqr)


def packed(replicas: int) -> tuple[int, ...]:
    """Replicas per node on the fewest nodes: ``(4, 4, 2)`` for 10."""
    full, rest = divmod(replicas, GPUS_PER_NODE)
    return (GPUS_PER_NODE,) * full + ((rest,) if rest else ())


def split_batch(app: Application, batch_size: int, replicas: int) -> tuple[int, int]:
    """``(atomic, accum)`` for a fixed total ``batch_size`` on ``replicas`` GPUs."""
    local = math.ceil(batch_size / replicas - 1e-8)
    accum = math.ceil(local / app.max_local_bsz - 1e-8) - 1
    if replicas == 1 and batch_size > app.init_batch_size:
        accum = max(1, accum)
    atomic = math.ceil(local / (accum + 1) - 1e-8)
    return min(atomic, int(app.max_batch_size / (replicas * (accum + 1)))), accum


@functools.cache
def candidates(app: Application, placement: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(batch sizes, step times)`` of the configurations the agent may pick on ``placement``."""
    replicas = sum(placement)
    low = max(app.init_batch_size, app.min_local_bsz * replicas)
    if low > app.max_batch_size:
        return np.zeros(0), np.zeros(0)
    batch = np.geomspace(low, app.max_batch_size, CANDIDATES)
    local = batch / replicas
    accum = np.ceil(local / app.max_local_bsz - 1e-8) - 1
    if replicas == 1:
        accum = np.where(local > app.init_batch_size + 1e-8, np.maximum(accum, 1), accum)
    atomic = np.minimum(np.ceil(local / (accum + 1) - 1e-8),
                        np.floor(app.max_batch_size / (replicas * (accum + 1))))
    ok = (app.min_local_bsz <= atomic) & (atomic <= app.max_local_bsz)
    atomic, accum = atomic[ok], accum[ok]
    if not len(atomic):
        return np.zeros(0), np.zeros(0)
    step, sync = app.step_times(placement, atomic).T
    return replicas * atomic * (accum + 1), step + accum * (step - sync)


MOST_GPUS = 64  # the artifact's cluster, and its cap on one job


@functools.cache
def _packed_table(app: Application) -> tuple[np.ndarray, np.ndarray]:
    """Candidate batch sizes and step times for 1..64 packed GPUs, one row each (entries past a
    row's candidates: infinite step time)."""
    sizes = np.ones((MOST_GPUS, CANDIDATES))
    times = np.full((MOST_GPUS, CANDIDATES), np.inf)
    for r in range(1, MOST_GPUS + 1):
        size, time = candidates(app, packed(r))
        sizes[r - 1, :len(size)], times[r - 1, :len(time)] = size, time
    return sizes, times


def best_goodputs(app: Application, most: int, grad: tuple[float, float]) -> np.ndarray:
    """The best goodput on 0..``most`` GPUs packed on the fewest nodes (0 on none)."""
    sizes, times = _packed_table(app)
    goodput = gain(sizes[:most], app.init_batch_size, *grad) / times[:most]
    return np.concatenate([[0.0], goodput.max(axis=1)])


def best_config(app: Application, placement: tuple[int, ...], grad: tuple[float, float]
                ) -> tuple[float, int]:
    """The highest goodput on ``placement`` over the candidate batch sizes, and that batch size."""
    sizes, times = candidates(app, placement)
    if not len(sizes):
        return 0.0, 0
    goodput = gain(sizes, app.init_batch_size, *grad) / times
    best = int(np.argmax(goodput))
    return float(goodput[best]), int(sizes[best])


def fixed_goodput(app: Application, placement: tuple[int, ...], batch_size: int,
                  grad: tuple[float, float]) -> float:
    """Goodput on ``placement`` at a fixed total ``batch_size`` (0 if it does not fit)."""
    replicas = sum(placement)
    if replicas * app.min_local_bsz > batch_size:
        return 0.0
    atomic, accum = split_batch(app, batch_size, replicas)
    step, sync = app.step_time(placement, atomic)
    return float(gain(replicas * atomic * (accum + 1), app.init_batch_size, *grad)) / (
        step + accum * (step - sync))
