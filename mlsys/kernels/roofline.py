"""The roofline model: measured peaks of this machine, primitive intensities, and the plot.

Attainable FLOP/s at arithmetic intensity ``I`` (FLOPs per byte moved) is
``min(peak_flops, I * bandwidth)`` (Williams, Waterman & Patterson, "Roofline: an insightful
visual performance model for multicore architectures", CACM 2009). Both ceilings are measured
here, as the Empirical Roofline Toolkit does, by kernels that approach them:

* bandwidth: a STREAM-style triad ``a = b + s * c`` run by a parallel Numba loop (McCalpin's
  STREAM counts 3 arrays x 8 bytes per element for float64, which is the convention used here).
  By default each array is four times the machine's last-level cache, read from the operating
  system (STREAM's own rule), so the figure is DRAM's; arrays that fit in a cache give that
  cache's roof instead (the cache-aware roofline of Ilic, Pratas & Sousa, IEEE CAL 2014);
* compute: a large float32 GEMM by the BLAS numpy links, the most compute-bound kernel on the
  machine (its GFLOP/s is a floor on the true peak, and the ceiling our kernels can be held to).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from ..ops.registry import Cost, Spec, get

__all__ = ["Peaks", "Cache", "caches", "dram_megabytes", "measure_peaks", "measure_bandwidth",
           "measure_flops", "attainable", "primitive_cost", "plot"]

SYSFS_CPUS = Path("/sys/devices/system/cpu")
FALLBACK_DRAM_MB = 256  # per triad array when the OS does not report its caches
MAX_DRAM_MB = 1024  # per triad array, however large the caches (3 arrays: 3 GiB)


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


@dataclass(frozen=True)
class Cache:
    """One level of the data cache hierarchy: ``size`` bytes per instance, ``instances`` of them
    (one L2 per core, one L3 per socket or core complex, ...)."""

    level: int
    size: int
    instances: int

    @property
    def total(self) -> int:
        return self.size * self.instances


def _bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def caches(root: Path = SYSFS_CPUS) -> list[Cache]:
    """This machine's data and unified caches, L1 first, as Linux reports them under ``root``
    (``/sys/devices/system/cpu``); an empty list where the OS does not say."""
    found: dict[int, dict[str, int]] = {}  # level -> {set of CPUs sharing an instance: size}
    for index in sorted(root.glob("cpu[0-9]*/cache/index[0-9]*")):
        try:
            if (index / "type").read_text().strip() not in ("Data", "Unified"):
                continue
            level = int((index / "level").read_text())
            found.setdefault(level, {})[(index / "shared_cpu_list").read_text().strip()] = \
                _bytes((index / "size").read_text())
        except (OSError, ValueError, KeyError):
            continue
    return [Cache(level, max(sizes.values()), len(sizes)) for level, sizes in sorted(found.items())]


def dram_megabytes(hierarchy: Sequence[Cache] | None = None) -> int:
    """MiB per triad array that make the triad measure DRAM: four times the total last-level
    cache (STREAM's rule), at least 64 and at most ``MAX_DRAM_MB``; ``FALLBACK_DRAM_MB`` when
    the cache sizes are unknown."""
    hierarchy = caches() if hierarchy is None else hierarchy
    if not hierarchy:
        return FALLBACK_DRAM_MB
    return min(MAX_DRAM_MB, max(64, math.ceil(4 * hierarchy[-1].total / (1 << 20))))


@njit(cache=True, parallel=True, fastmath=True)
def _triad(a, b, c, s, passes, chunks):
    """``a = b + s * c``, ``passes`` times over each of ``chunks`` shares of the arrays (one per
    thread), all in one parallel region: arrays that fit in a cache are timed there, not at the
    cost of a launch."""
    n = a.shape[0]
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        dst, x, y = a[lo:hi], b[lo:hi], c[lo:hi]  # views: a plain loop from 0 that vectorizes
        for p in range(passes):
            scale = s + p
            for i in range(dst.shape[0]):
                dst[i] = x[i] + scale * y[i]


def measure_bandwidth(megabytes: float | None = None, repeat: int = 5) -> float:
    """Sustained bandwidth in bytes/s of a triad over three ``megabytes``-sized float64 arrays
    (default: :func:`dram_megabytes`, beyond the caches). Each call moves at least 64 MiB, and
    the best of ``repeat`` short timings is kept, so that load from other programs and the cost
    of starting the parallel region weigh little."""
    megabytes = dram_megabytes() if megabytes is None else megabytes
    if not megabytes > 0:
        raise ValueError(f"measure_bandwidth: megabytes must be > 0, got {megabytes}")
    n = max(1, int(megabytes * (1 << 20)) // 8)
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    passes = max(1, (64 << 20) // (3 * a.nbytes))
    chunks = numba.get_num_threads()
    return 3 * a.nbytes * passes / _best_call(lambda: _triad(a, b, c, 3.0, passes, chunks), repeat)


def _best_call(fn: Callable[[], Any], repeat: int, budget: float = 0.1) -> float:
    """Seconds of the fastest single call of ``fn``: at least ``repeat`` calls and ``budget``
    seconds of them, after a quarter of that warming up, so that a thread pool waking up or a
    moment of load from other programs does not decide the figure."""
    start = time.perf_counter()
    while time.perf_counter() - start < budget / 4:
        fn()
    best, spent, calls = float("inf"), 0.0, 0
    while calls < repeat or spent < budget:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
        best, spent, calls = min(best, seconds), spent + seconds, calls + 1
    return best


def measure_flops(n: int = 1024, repeat: int = 5) -> float:
    """FLOP/s of an ``n x n`` float32 GEMM by numpy's BLAS (its fastest single call)."""
    if n < 1:
        raise ValueError(f"measure_flops: n must be >= 1, got {n}")
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return 2 * n**3 / _best_call(lambda: a @ b, repeat)


def measure_peaks(name: str = "this CPU", gemm_n: int = 1024, megabytes: float | None = None) -> Peaks:
    """Both ceilings of this machine (bandwidth: DRAM's unless ``megabytes`` fit in a cache)."""
    return Peaks(name, measure_flops(gemm_n), measure_bandwidth(megabytes))


def attainable(intensity: float | np.ndarray, peaks: Peaks) -> float | np.ndarray:
    """Roofline bound in FLOP/s at ``intensity`` for ``peaks`` (a :class:`Peaks`; a catalogued
    GPU's is ``gpu(name).roof(dtype)``)."""
    return np.minimum(peaks.flops, np.asarray(intensity) * peaks.bandwidth)


def primitive_cost(name: str, *shapes: Sequence[int], dtype: Any = np.float32,
                   **params: Any) -> Cost:
    """FLOPs and bytes of registry primitive ``name`` on inputs of ``shapes``, from its cost rule."""
    prim = get(name)
    specs = [Spec(tuple(s), np.dtype(dtype)) for s in shapes]
    return prim.cost(*specs, out=prim.shape(*specs, **params), **params)


def plot(ax: Any, peaks: Peaks, points: Sequence[tuple[str, float, float]] = (),
         intensity_range: tuple[float, float] = (1 / 16, 256), label: str | None = None) -> None:
    """Draw the roofline of ``peaks`` on matplotlib axes ``ax`` (log-log, GFLOP/s vs FLOP/byte),
    with measured kernels as ``(name, intensity, flops_per_second)`` points."""
    x = np.geomspace(*intensity_range, 200)
    ax.loglog(x, attainable(x, peaks) / 1e9, label=label or peaks.name)
    for name, intensity, flops in points:
        ax.scatter([intensity], [flops / 1e9], zorder=3)
        ax.annotate(name, (intensity, flops / 1e9), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("GFLOP/s")
    ax.grid(True, which="both", alpha=0.3)
