"""Synthetic traces with Philly's shape: the default workload, needing no data files.

GPU counts and per-size log-normal durations were fitted to the 82,247 jobs of Microsoft's Philly
trace (Jeon et al., ATC'19) as published in the Pollux artifact (Qiao et al., OSDI'21): maximum
likelihood on log run time per GPU count, sizes above 32 folded into 32. Arrivals are a Poisson
process (Philly saw about 31 jobs an hour across its virtual clusters), optionally modulated by a
day/night cycle. Durations are clipped to ``[min_duration, max_duration]``.
"""

from __future__ import annotations

import math

import numpy as np

from ..job import Job, Trace

#: GPU count -> (probability, mean of ln seconds, std of ln seconds), fitted to Philly.
PHILLY_SHAPE: dict[int, tuple[float, float, float]] = {
    1: (0.93167, 6.719, 1.972),
    2: (0.02210, 4.522, 3.268),
    4: (0.02274, 9.106, 2.781),
    8: (0.01998, 9.654, 2.791),
    16: (0.00242, 9.270, 3.345),
    32: (0.00109, 8.827, 2.468),
}
PHILLY_JOBS_PER_HOUR = 31.5


def synthetic_trace(n_jobs: int, *, jobs_per_hour: float = PHILLY_JOBS_PER_HOUR, seed: int = 0,
                    max_gpus: int | None = None, min_duration: float = 60.0,
                    max_duration: float = 14 * 86400.0, diurnal: float = 0.0,
                    shape: dict[int, tuple[float, float, float]] | None = None) -> Trace:
    """``n_jobs`` jobs drawn from ``shape`` (default :data:`PHILLY_SHAPE`), deterministic in ``seed``.

    ``max_gpus`` drops sizes larger than the cluster from the mix (and renormalizes); ``diurnal``
    in ``[0, 1)`` is the relative amplitude of a 24-hour sinusoid on the arrival rate.
    """
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an integer >= 1, got {n_jobs!r}")
    if not (math.isfinite(jobs_per_hour) and jobs_per_hour > 0):
        raise ValueError(f"jobs_per_hour must be finite and > 0, got {jobs_per_hour}")
    if not 0 < min_duration <= max_duration:
        raise ValueError(f"need 0 < min_duration <= max_duration, got {min_duration}, {max_duration}")
    if not 0 <= diurnal < 1:
        raise ValueError(f"diurnal must be in [0, 1), got {diurnal}")
    shape = dict(shape or PHILLY_SHAPE)
    if max_gpus is not None:
        shape = {g: v for g, v in shape.items() if g <= max_gpus}
        if not shape:
            raise ValueError(f"max_gpus={max_gpus} is smaller than every job size in the shape")
    rng = np.random.default_rng(seed)
    sizes = np.array(sorted(shape))
    p = np.array([shape[g][0] for g in sizes])
    pick = rng.choice(len(sizes), size=n_jobs, p=p / p.sum())
    mu = np.array([shape[g][1] for g in sizes])[pick]
    sigma = np.array([shape[g][2] for g in sizes])[pick]
    work = np.clip(np.exp(rng.normal(mu, sigma)), min_duration, max_duration).round()
    arrivals = _arrivals(rng, n_jobs, jobs_per_hour / 3600.0, diurnal)
    jobs = [Job(str(i), float(t), int(sizes[k]), float(w))
            for i, (t, k, w) in enumerate(zip(arrivals, pick, work))]
    return Trace(f"synthetic-{n_jobs}-s{seed}", jobs, "synthetic (Philly-fitted)")


def _arrivals(rng: np.random.Generator, n: int, rate: float, diurnal: float) -> np.ndarray:
    """Poisson arrival times; with ``diurnal`` > 0, thinned to a 24-hour sinusoidal rate."""
    if diurnal == 0:
        return np.cumsum(rng.exponential(1 / rate, size=n)).round(3)
    peak = rate * (1 + diurnal)
    out: list[float] = []
    t = 0.0
    while len(out) < n:
        gaps = np.cumsum(rng.exponential(1 / peak, size=2 * n)) + t
        keep = rng.random(len(gaps)) < (1 + diurnal * np.sin(2 * np.pi * gaps / 86400)) / (1 + diurnal)
        out.extend(gaps[keep].tolist())
        t = gaps[-1]
    return np.round(out[:n], 3)
