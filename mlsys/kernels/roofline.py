"""The roofline model: measured peaks of this machine, primitive intensities, and the plot.

Attainable FLOP/s at arithmetic intensity ``I`` (FLOPs per byte moved) is
``min(peak_flops, I * bandwidth)`` (Williams, Waterman & Patterson, "Roofline: an insightful
visual performance model for multicore architectures", CACM 2009). Both ceilings are measured
here, as the Empirical Roofline Toolkit does, by kernels that approach them:

* bandwidth: a STREAM-style triad ``a = b + s * c`` over arrays far larger than the caches,
  run by a parallel Numba loop (McCalpin's STREAM counts 3 arrays x 8 bytes per element for
  float64, which is the convention used here);
* compute: a large float32 GEMM by the BLAS numpy links, the most compute-bound kernel on the
  machine (its GFLOP/s is a floor on the true peak, and the ceiling our kernels can be held to).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from ..bench.report import time_it
from ..ops.registry import Cost, Spec, get

__all__ = ["Peaks", "measure_peaks", "measure_bandwidth", "measure_flops", "attainable",
           "primitive_cost", "plot"]


@dataclass(frozen=True)
class Peaks:
    """A machine's two ceilings: FLOP/s and bytes/s."""

    name: str
    flops: float
    bandwidth: float

    @property
    def ridge(self) -> float:
        """Intensity (FLOP/byte) where memory-bound turns compute-bound."""
        return self.flops / self.bandwidth


@njit(cache=True, parallel=True, fastmath=True)
def _triad(a, b, c, s):
    for i in prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


def measure_bandwidth(megabytes: int = 64, repeat: int = 5) -> float:
    """Sustained memory bandwidth in bytes/s from a triad over three ``megabytes``-sized arrays."""
    if megabytes < 1:
        raise ValueError(f"measure_bandwidth: megabytes must be >= 1, got {megabytes}")
    n = megabytes * (1 << 20) // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    seconds = time_it(lambda: _triad(a, b, c, 3.0), repeat=repeat, min_time=0.02)
    return 3 * a.nbytes / seconds


def measure_flops(n: int = 1024, repeat: int = 5) -> float:
    """FLOP/s of an ``n x n`` float32 GEMM by numpy's BLAS."""
    if n < 1:
        raise ValueError(f"measure_flops: n must be >= 1, got {n}")
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return 2 * n**3 / time_it(lambda: a @ b, repeat=repeat, min_time=0.02)


def measure_peaks(name: str = "this CPU", gemm_n: int = 1024, megabytes: int = 64) -> Peaks:
    """Both ceilings of this machine."""
    return Peaks(name, measure_flops(gemm_n), measure_bandwidth(megabytes))


def attainable(intensity: float | np.ndarray, peaks: Any) -> float | np.ndarray:
    """Roofline bound in FLOP/s at ``intensity`` for ``peaks`` (a :class:`Peaks`, or anything
    with ``flops`` and ``bandwidth``; a GPU catalog entry's ``flops`` dict uses its fp32 peak)."""
    flops = peaks.flops["fp32"] if isinstance(peaks.flops, dict) else peaks.flops
    return np.minimum(flops, np.asarray(intensity) * peaks.bandwidth)


def primitive_cost(name: str, *shapes: Sequence[int], dtype: Any = np.float32,
                   **params: Any) -> Cost:
    """FLOPs and bytes of registry primitive ``name`` on inputs of ``shapes``, from its cost rule."""
    prim = get(name)
    specs = [Spec(tuple(s), np.dtype(dtype)) for s in shapes]
    return prim.cost(*specs, out=prim.shape(*specs, **params), **params)


def plot(ax: Any, peaks: Any, points: Sequence[tuple[str, float, float]] = (),
         intensity_range: tuple[float, float] = (1 / 16, 256), label: str | None = None) -> None:
    """Draw the roofline of ``peaks`` on matplotlib axes ``ax`` (log-log, GFLOP/s vs FLOP/byte),
    with measured kernels as ``(name, intensity, flops_per_second)`` points."""
    x = np.geomspace(*intensity_range, 200)
    ax.loglog(x, attainable(x, peaks) / 1e9, label=label or getattr(peaks, "name", "roofline"))
    for name, intensity, flops in points:
        ax.scatter([intensity], [flops / 1e9], zorder=3)
        ax.annotate(name, (intensity, flops / 1e9), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("GFLOP/s")
    ax.grid(True, which="both", alpha=0.3)
