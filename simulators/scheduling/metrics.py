"""Metrics of a finished run: completion times, queueing, utilization and fairness.

Finish-time fairness follows Themis (Mahajan et al., NSDI'20): ``rho = JCT / T_ideal`` where
``T_ideal`` is the job's running time on a private ``1/N`` share of the cluster and ``N`` the
time-averaged number of jobs in the system while it was. ``rho <= 1`` means the job did at least as
well as with its fair share. Jain's index (Jain et al. 1984) of ``1/rho`` is 1 when every job got
the same fraction of its fair share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .result import Result


def utilization_series(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """``(times, busy fraction)``: the step function of GPUs held, from event to event."""
    return result.samples["time"], result.samples["busy"] / result.spec.gpus


def utilization(result: Result) -> float:
    """Time-averaged fraction of GPUs held from the first arrival to the last finish."""
    return result.gpu_seconds() / (result.spec.gpus * result.makespan)


def contention(result: Result) -> np.ndarray:
    """Each job's time-averaged number of jobs in the system (itself included) over its life."""
    times = np.concatenate([result.arrival, result.finish])
    steps = np.concatenate([np.ones_like(result.arrival), -np.ones_like(result.finish)])
    order = np.argsort(times, kind="stable")
    times, active = times[order], np.cumsum(steps[order])
    area = np.concatenate([[0.0], np.cumsum(active[:-1] * np.diff(times))])

    def integral(x: np.ndarray) -> np.ndarray:
        k = np.searchsorted(times, x, side="right") - 1
        return area[k] + active[k] * (x - times[k])

    span = result.finish - result.arrival
    return (integral(result.finish) - integral(result.arrival)) / np.maximum(span, 1e-12)


def finish_time_fairness(result: Result) -> np.ndarray:
    """Per-job ``rho = JCT / T_ideal`` (Themis)."""
    share = result.spec.gpus / np.maximum(contention(result), 1.0)
    ideal = result.work * np.maximum(1.0, result.gpus / share)
    return result.jct / ideal


def jain_index(values: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)``: 1 when all equal, ``1/n`` at worst."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or (x < 0).any():
        raise ValueError("jain_index needs a non-empty array of values >= 0")
    return float(x.sum() ** 2 / (x.size * (x * x).sum()))


def summarize(result: Result) -> dict[str, float | str | int]:
    """One row of headline metrics (times in seconds)."""
    jct, queue = result.jct, result.queueing
    rho = finish_time_fairness(result)
    return {"policy": result.policy, "jobs": len(jct), "avg_jct": float(jct.mean()),
            "median_jct": float(np.median(jct)), "p99_jct": float(np.percentile(jct, 99)),
            "avg_queue": float(queue.mean()), "makespan": result.makespan,
            "utilization": utilization(result), "max_rho": float(rho.max()),
            "jain": jain_index(1.0 / rho), "preemptions": int(result.preemptions.sum())}


def plot_jct_cdf(results: Sequence[Result], ax=None, *, hours: bool = True):
    """Overlaid CDFs of job completion time, one line per result (log x axis)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    scale = 3600.0 if hours else 1.0
    for result in results:
        jct = np.sort(result.jct) / scale
        ax.plot(jct, np.arange(1, len(jct) + 1) / len(jct), label=result.policy)
    ax.set_xscale("log")
    ax.set_xlabel(f"job completion time ({'h' if hours else 's'})")
    ax.set_ylabel("fraction of jobs")
    ax.legend()
    return ax
