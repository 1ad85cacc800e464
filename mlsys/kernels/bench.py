"""``mlsys bench kernels``: each kernel's GFLOP/s or GB/s next to its library baseline and roofline.

CPU kernels run against numpy (BLAS for matmul) in the same process, and every row shows the
roofline bound at the kernel's arithmetic intensity, from this machine's ceilings measured at the
start of the run. CUDA kernels are timed only on a real GPU (against CuPy or PyTorch when one is
installed); under the simulator they are checked by the tests, not timed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import cliargs
from ..bench.report import emit, time_it, time_side_by_side
from ..ops import nn as nn_ops
from ..ops.registry import Cost
from . import roofline
from .cpu import matmul as cpu_matmul
from .cpu import nn as cpu_nn
from .cpu.elementwise import ufunc

SETTLE_S = 0.2
WINDOW_S = 0.002


def time_pair(fn: Callable[[], Any], base_fn: Callable[[], Any], repeat: int = 3) -> tuple[float, float]:
    """Best seconds per call of a kernel and of its baseline, timed interleaved.

    Numba's and OpenBLAS's worker threads spin-wait for a while after a parallel region; on a
    small machine, timing one right after the other would measure their contention, so each switch
    first lets the previous pool go idle. Each figure is the best of several short windows (a few
    milliseconds): a parallel kernel waits for its slowest thread, so a window long enough to
    include another program's time slice measures that program, not the kernel.
    """
    seconds, base_seconds = time_side_by_side([fn, base_fn], rounds=repeat, repeat=5,
                                              min_time=WINDOW_S, settle=SETTLE_S)
    return seconds, base_seconds


def _row(kernel: str, size: str, cost: Cost, fn: Callable[[], Any], baseline: str,
         base_fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    seconds, base_seconds = time_pair(fn, base_fn, repeat)
    return {"kernel": kernel, "size": size, "cost": cost, "seconds": seconds,
            "baseline": baseline, "base_seconds": base_seconds}


def finish(row: dict[str, Any], peaks: roofline.Peaks) -> dict[str, Any]:
    """Rates in GFLOP/s (compute-bound kernels) or GB/s (memory-bound), ratios, roofline bound."""
    cost = row.pop("cost")
    seconds, base_seconds = row.pop("seconds"), row.pop("base_seconds")
    compute_bound = cost.intensity >= peaks.ridge
    work = cost.flops if compute_bound else cost.bytes
    bound = float(roofline.attainable(cost.intensity, peaks)) if compute_bound else peaks.bandwidth
    rate = work / seconds
    return {**row, "unit": "GFLOP/s" if compute_bound else "GB/s", "rate": rate / 1e9,
            "baseline_rate": work / base_seconds / 1e9, "vs_baseline": base_seconds / seconds,
            "roofline": bound / 1e9, "of_roofline": rate / bound, "ms": seconds * 1e3}


def cpu_rows(n: int, repeat: int = 3) -> list[dict[str, Any]]:
    """Timings of the Numba CPU kernels at problem size ``n`` (rows for :func:`finish`)."""
    rng = np.random.default_rng(0)
    rows = []
    for stage, kernel in cpu_matmul.STAGES.items():
        m = min(n, 256) if stage == "naive" else n
        a, b = rng.random((m, m), dtype=np.float32), rng.random((m, m), dtype=np.float32)
        out = np.empty((m, m), np.float32)
        cost = roofline.primitive_cost("matmul", (m, m), (m, m))
        rows.append(_row(f"matmul/{stage}", f"{m}^3", cost,
                         lambda k=kernel, a=a, b=b, out=out: k(a, b, out),
                         "numpy (BLAS)", lambda a=a, b=b: a @ b, repeat))
    # memory-bound kernels get 16x the matmul's elements (64 MiB at n=1024: beyond the caches)
    x = rng.random((4 * n, 4 * n), dtype=np.float32)
    n, size = 4 * n, f"{4 * n}x{4 * n}"
    cost = roofline.primitive_cost("sum", (n, n), axis=(1,), keepdims=False)
    rows.append(_row("sum rows", size, cost, lambda: cpu_nn.reduce3(x.reshape(n, n, 1), "sum"),
                     "numpy", lambda: x.sum(axis=1), repeat))
    cost = roofline.primitive_cost("softmax", (n, n), axis=1)
    rows.append(_row("softmax rows", size, cost, lambda: cpu_nn.softmax_rows(x),
                     "numpy reference", lambda: nn_ops.softmax.forward(x, axis=1), repeat))
    w, bias = np.ones(n, np.float32), np.zeros(n, np.float32)

    def numpy_layer_norm() -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + bias

    cost = Cost(8 * x.size, 2 * x.nbytes)
    rows.append(_row("layer norm", size, cost, lambda: cpu_nn.layer_norm_rows(x, w, bias),
                     "numpy", numpy_layer_norm, repeat))
    cost = roofline.primitive_cost("add", (n, n), (n, n))
    add = ufunc("add", np.float32)
    rows.append(_row("add (ufunc)", size, cost, lambda: add(x, x), "numpy",
                     lambda: np.add(x, x), repeat))
    rows.append(_conv_row(rng, max(1, n // 128), repeat))
    return rows


def _conv_row(rng: np.random.Generator, batch: int, repeat: int) -> dict[str, Any]:
    """Direct conv2d against im2col (the engine's unfold2d) + BLAS matmul, 3x3 on 32x32 images."""
    x = rng.random((batch, 16, 32, 32), dtype=np.float32)
    w = rng.random((32, 16, 3, 3), dtype=np.float32)
    params = {"kernel_size": (3, 3), "stride": (1, 1), "padding": (1, 1)}

    def im2col() -> np.ndarray:
        cols = nn_ops.unfold2d.forward(x, **params)
        return (w.reshape(32, -1) @ cols).reshape(batch, 32, 32, 32)

    out = batch * 32 * 32 * 32
    cost = Cost(2 * out * 16 * 9, x.nbytes + w.nbytes + out * 4)
    return _row("conv2d direct", f"{batch}x16x32x32 * 32x16x3x3", cost,
                lambda: cpu_nn.conv2d(x, w, 1, 1), "im2col + BLAS", im2col, repeat)


def cuda_rows(n: int, repeat: int = 3) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for the CUDA kernels on a real GPU, with cuBLAS through CuPy or PyTorch if present."""
    from .cuda import matmul as cuda_matmul
    from .cuda.gpucheck import cublas_gemm
    from .cuda.runtime import SIMULATOR, cuda

    if SIMULATOR:
        return [], ["CUDA: no GPU here; the CUDA kernels run in Numba's simulator (checked by "
                    "tests/kernels, not timed)."]
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    da, db = cuda.to_device(a), cuda.to_device(b)
    dc = cuda.device_array((n, n), np.float32)
    baseline, base_fn = cublas_gemm(a, b)
    rows, notes = [], []
    flops = 2 * n**3
    base_s = _gpu_time(base_fn, repeat) if base_fn else None
    for stage, make in cuda_matmul.STAGES.items():
        tile = cuda_matmul.TILES[stage]
        grid, block = cuda_matmul.launch_shape(stage, n, n, tile)
        launch = make(tile)[grid, block]
        seconds = _gpu_time(lambda launch=launch: launch(da, db, dc), repeat)
        rows.append({"kernel": f"cuda matmul/{stage}", "size": f"{n}^3", "unit": "GFLOP/s",
                     "rate": flops / seconds / 1e9, "baseline": baseline,
                     "baseline_rate": flops / base_s / 1e9 if base_s else None,
                     "vs_baseline": base_s / seconds if base_s else None, "ms": seconds * 1e3})
    if base_fn is None:
        notes.append("no CuPy or PyTorch with CUDA installed: no cuBLAS baseline")
    return rows, notes


def _gpu_time(fn: Callable[[], Any], repeat: int) -> float:
    from .cuda.runtime import cuda

    def synced() -> None:
        fn()
        cuda.synchronize()

    return time_it(synced, repeat=repeat, min_time=0.05)


def main(argv: list[str]) -> int:
    parser = cliargs.ArgumentParser(prog="mlsys bench kernels", description=__doc__)
    parser.add_argument("--n", type=cliargs.int_range(8, 16384), default=1024,
                        help="matrix size (default 1024)")
    parser.add_argument("--repeat", type=cliargs.int_range(1, 1000), default=3,
                        help="timing repeats (best is kept)")
    parser.add_argument("--bandwidth-mb", type=cliargs.int_range(1, 65536), default=None,
                        help="MiB per array of the bandwidth probe (default: four times the "
                             "last-level cache, so that it measures DRAM)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    timings = cpu_rows(args.n, args.repeat)
    megabytes = args.bandwidth_mb or roofline.dram_megabytes()
    measured = roofline.measure_peaks(gemm_n=args.n, megabytes=megabytes)
    # the compute ceiling: the best float32 GEMM seen in this run (BLAS at n, or the probe)
    gemm = max(r["cost"].flops / r["base_seconds"] for r in timings if r["kernel"].startswith("matmul/"))
    peaks = roofline.Peaks("this CPU", max(measured.flops, gemm), measured.bandwidth)
    rows = [finish(r, peaks) for r in timings]
    gpu_rows, notes = cuda_rows(args.n, args.repeat)
    notes = [f"roofline of this machine (measured now): {peaks.flops / 1e9:.1f} GFLOP/s "
             f"(float32 BLAS GEMM), {peaks.bandwidth / 1e9:.1f} GB/s (triad, 3 x {megabytes} MiB); "
             f"ridge {peaks.ridge:.1f} FLOP/byte", *notes]
    columns = ["kernel", "size", "unit", "rate", "baseline", "baseline_rate", "vs_baseline",
               "roofline", "of_roofline", "ms"]
    print(emit(rows + gpu_rows, as_json=args.json, title="kernels: rate vs library and roofline",
               columns=columns, notes=notes))
    return 0
