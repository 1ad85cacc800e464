"""``make gpu-check``: the CUDA engine measured on a real GPU, against its targets.

On a machine with an NVIDIA GPU (and CuPy, which ``make gpu-check`` installs for this check
only, for cuBLAS) it

1. runs the kernel tests for real, not in the simulator (``tests/kernels`` and the backend
   matrix, ``tests/ops/test_backends.py``);
2. measures the device's memory bandwidth (a device-to-device copy by CuPy, and the engine's own
   copy kernel: the best of the two);
3. times each matmul stage against cuBLAS at ``n`` (target: the best tiled or register-blocked
   stage reaches 30%);
4. times the row sum and the row softmax against that bandwidth (target: 70%), counting the
   bytes each must move (read the input once, write the output once);
5. trains the MLP at batch 1024 on ``cpu``, ``cuda`` and ``cuda`` compiled, and times a step of
   each (targets: ``cuda`` faster than ``cpu``; compiled faster than eager), counting the
   host<->device transfers of a step;

and prints one table, also written as JSON (``--out``, with the date and the GPU's name). It
exits 1 when the kernel tests fail, and 2, measuring nothing, on a machine without a usable GPU,
saying what is missing (``--preflight`` only makes that check: ``make gpu-check`` runs it before
installing CuPy). ``--simulate`` runs the same code paths in Numba's CUDA simulator on tiny sizes
(for its tests): its figures time Python, not a GPU, and say so.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ... import cliargs
from ...bench.report import emit, time_it
from ...ops.registry import PRIMITIVES
from . import runtime
from .loops import copy_into, reduce_into
from .matmul import STAGES, TILES, launch_shape
from .memory import count_transfers, empty, kernel_view, upload
from .nn import softmax
from .runtime import SIMULATOR, cuda

__all__ = ["main", "matmul_rows", "gpu_time", "cublas_gemm", "missing_gpu", "TARGETS"]

TARGETS = {"matmul": 0.30, "bandwidth": 0.70}  # of cuBLAS; of the measured device bandwidth
COLUMNS = ["check", "size", "value", "unit", "baseline", "baseline_value", "ratio", "target", "met"]


def gpu_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best seconds per call of ``fn``, each call followed by a device synchronization."""
    def synced() -> None:
        fn()
        cuda.synchronize()

    # in the simulator a call takes far longer than the timer's resolution: one call per timing
    return time_it(synced, repeat=repeat, number=1 if SIMULATOR else None, min_time=0.05)


def cublas_gemm(a: np.ndarray, b: np.ndarray) -> tuple[str, Callable[[], Any] | None]:
    """``a @ b`` by cuBLAS through CuPy (or PyTorch), on device copies; None without either
    (and in the simulator, where neither has a GPU)."""
    if SIMULATOR:
        return "-", None
    try:
        import cupy

        ga, gb = cupy.asarray(a), cupy.asarray(b)
        return "cuBLAS (CuPy)", lambda: ga @ gb
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            return "cuBLAS (PyTorch)", lambda: ta @ tb
    except ImportError:
        pass
    return "-", None


def _row(check: str, size: str, value: float, unit: str, baseline: str = "-",
         baseline_value: float | None = None, ratio: float | None = None,
         target: str = "-", met: bool | None = None) -> dict[str, Any]:
    return {"check": check, "size": size, "value": value, "unit": unit, "baseline": baseline,
            "baseline_value": baseline_value, "ratio": ratio, "target": target, "met": met}


def matmul_rows(n: int, repeat: int = 3, tiles: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Each stage's GFLOP/s on ``n x n`` float32 matrices, next to cuBLAS in the same run."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    da, db, dc = upload(a), upload(b), empty((n, n), np.float32)
    flops = 2 * n**3
    baseline, base_fn = cublas_gemm(a, b)
    base = flops / gpu_time(base_fn, repeat) / 1e9 if base_fn else None
    rows, rates = [], {}
    for stage in STAGES:
        tile = (tiles or TILES)[stage]
        grid, block = launch_shape(stage, n, n, tile)
        launch = STAGES[stage](tile)[grid, block]
        args = (kernel_view(da), kernel_view(db), kernel_view(dc))
        rates[stage] = flops / gpu_time(lambda launch=launch, args=args: launch(*args), repeat) / 1e9
        rows.append(_row(f"matmul {stage} (tile {tile})", f"{n}^3", rates[stage], "GFLOP/s", baseline,
                         base, rates[stage] / base if base else None))
    best = max((s for s in STAGES if s != "naive"), key=rates.__getitem__)
    rows.append(_row(f"matmul: best tiled stage ({best}) vs cuBLAS", f"{n}^3", rates[best], "GFLOP/s",
                     baseline, base, rates[best] / base if base else None,
                     f">= {TARGETS['matmul']:.0%} of cuBLAS",
                     rates[best] / base >= TARGETS["matmul"] if base else None))
    return rows


def bandwidth_rows(rows: int, cols: int, repeat: int = 3) -> tuple[float, list[dict[str, Any]]]:
    """The device bandwidth (best of CuPy's copy and the engine's copy kernel), and the row sum
    and row softmax as fractions of it."""
    x = upload(np.random.default_rng(0).random((rows, cols), dtype=np.float32))
    y = empty(x.shape, np.float32)
    size = f"{rows}x{cols}"
    copies = {"copy kernel (engine)": 2 * x.nbytes / gpu_time(lambda: copy_into(y, x), repeat)}
    try:
        import cupy

        if not SIMULATOR:
            gx = cupy.asarray(np.zeros((rows, cols), np.float32))
            gy = cupy.empty_like(gx)
            copies["cudaMemcpy device to device (CuPy)"] = 2 * x.nbytes / gpu_time(
                lambda: gy.data.copy_from_device(gx.data, gx.nbytes), repeat)
    except ImportError:
        pass
    peak = max(copies.values())
    out = [_row(f"bandwidth: {name}", size, rate / 1e9, "GB/s") for name, rate in copies.items()]
    sums = empty((rows,), np.float32)
    kernels = {"row sum": (lambda: reduce_into(sums, PRIMITIVES["sum"], x, (1,)), x.nbytes + sums.nbytes),
               "row softmax": (lambda: softmax(x, 1, out=y), 2 * x.nbytes)}
    for name, (fn, moved) in kernels.items():
        rate = moved / gpu_time(fn, repeat)
        out.append(_row(name, size, rate / 1e9, "GB/s", "measured bandwidth", peak / 1e9, rate / peak,
                        f">= {TARGETS['bandwidth']:.0%} of it", rate / peak >= TARGETS["bandwidth"]))
    return peak, out


def _training_step(device: str, compiled: bool, hidden: int) -> Callable:
    """A training step of the MLP (Adam) on ``device``, eager or compiled."""
    import mlsys
    from mlsys import optim
    from mlsys.graph import TrainStep
    from mlsys.kernels import to_device
    from mlsys.models import mlp

    mlsys.manual_seed(0)
    model = to_device(mlp(hidden=hidden), device)
    step = TrainStep(model, optim.Adam(model.parameters(), lr=1e-3))
    return mlsys.compile(step) if compiled else step


def training_rows(batch: int, steps: int, hidden: int = 128) -> list[dict[str, Any]]:
    """A training step of the MLP on cpu, cuda and compiled cuda: seconds, and transfers."""
    import mlsys
    from mlsys.data import load_digits

    x, y = load_digits("train")[:batch]
    seconds, moved = {}, {}
    for name, device, compiled in [("cpu", "cpu", False), ("cuda", "cuda", False),
                                   ("cuda compiled", "cuda", True)]:
        run = _training_step(device, compiled, hidden)

        def one_step(run: Callable = run, device: str = device) -> float:
            return run(mlsys.tensor(x).to(device), mlsys.tensor(y).to(device)).item()

        for _ in range(2):  # warm up: compile the kernels, trace, create the optimizer state
            one_step()
        with count_transfers() as t:  # a step in the steady state (compiled: the graph runs)
            one_step()
        moved[name] = t.value
        seconds[name] = time_it(one_step, repeat=steps, number=1)
    size = f"batch {len(x)}"
    rows = [_row(f"MLP step, {name}", size, s * 1e3, "ms") for name, s in seconds.items()]
    rows.append(_row("MLP step: cuda vs cpu", size, seconds["cuda"] * 1e3, "ms", "cpu",
                     seconds["cpu"] * 1e3, seconds["cpu"] / seconds["cuda"], "faster than cpu",
                     seconds["cuda"] < seconds["cpu"]))
    rows.append(_row("MLP step: compiled vs eager cuda", size, seconds["cuda compiled"] * 1e3, "ms",
                     "eager cuda", seconds["cuda"] * 1e3, seconds["cuda"] / seconds["cuda compiled"],
                     "faster than eager", seconds["cuda compiled"] < seconds["cuda"]))
    batch_bytes = x.astype(np.float32).nbytes + y.nbytes
    for name in ("cuda", "cuda compiled"):
        t = moved[name]
        rows.append(_row(f"transfers per step, {name}", size, t.count, "copies",
                         "batch up, loss down", 3, None, f"{batch_bytes + 4} bytes",
                         (t.to_device, t.to_host, t.bytes) == (2, 1, batch_bytes + 4)))
    return rows


def run_tests() -> dict[str, Any]:
    """The kernel tests on the GPU (the simulator switched off), by pytest in a child process."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "tests" / "kernels").is_dir():
        return {"ran": False, "why": f"no tests/kernels under {root} (an installed package)"}
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/kernels", "tests/ops/test_backends.py"], cwd=root, env=env,
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return {"ran": True, "returncode": done.returncode, "summary": lines[-1] if lines else ""}


def missing_gpu() -> str | None:
    """Why this process cannot measure a GPU (None when it can)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return ("NUMBA_ENABLE_CUDASIM is set, so Numba runs CUDA kernels in its simulator: unset it "
                "on a machine with an NVIDIA GPU")
    if not runtime.gpu_present():
        return ("no NVIDIA driver on this machine (no libcuda library, no /dev/nvidiactl), so the "
                "CUDA kernels run in Numba's simulator: run it where `nvidia-smi` lists a GPU")
    if SIMULATOR:  # (numba.cuda imported in simulator mode before this module)
        return "numba.cuda runs in its simulator in this process"
    if not cuda.is_available():
        return ("the NVIDIA driver is here but numba-cuda finds no usable GPU (cuda.is_available() "
                "is False: see `nvidia-smi` and `python -c 'from numba import cuda; cuda.detect()'`)")
    return None


def device_name() -> str:
    if SIMULATOR:
        return "Numba CUDA simulator (no GPU)"
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    return f"{name} ({device.MULTIPROCESSOR_COUNT} SMs)"


def main(argv: list[str] | None = None) -> int:
    parser = cliargs.ArgumentParser(prog="python -m mlsys.kernels.cuda.gpucheck", description=__doc__)
    parser.add_argument("--out", default="gpu-check.json", help="JSON file to write")
    parser.add_argument("--n", type=cliargs.int_range(8, 16384), default=4096, help="matmul size")
    parser.add_argument("--rows", type=cliargs.int_range(1, 65536), default=8192,
                        help="rows (and columns) of the reduction and softmax")
    parser.add_argument("--batch", type=cliargs.int_range(1, 1024), default=1024, help="MLP batch")
    parser.add_argument("--hidden", type=cliargs.int_range(1, 4096), default=128,
                        help="MLP width (the course's MLP: 128)")
    parser.add_argument("--repeat", type=cliargs.int_range(1, 100), default=5, help="timing repeats")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the kernel tests")
    parser.add_argument("--simulate", action="store_true",
                        help="accept the CUDA simulator when there is no GPU (for tests: tiny sizes; "
                             "its figures time Python, not a GPU)")
    parser.add_argument("--preflight", action="store_true",
                        help="only check that a GPU can be measured (exit 2 saying what is missing)")
    args = parser.parse_args(argv)
    missing = None if args.simulate else missing_gpu()
    if missing:
        print(f"gpu-check measures a real GPU and cannot here: {missing}. (--simulate only "
              f"exercises the script, in the simulator.)", file=sys.stderr)
        return 2
    if args.preflight:
        print(f"gpu-check: {device_name()} is ready to measure")
        return 0
    skip = "--simulate" if args.simulate else "--skip-tests" if args.skip_tests else None
    tests = {"ran": False, "why": skip} if skip else run_tests()
    tiles = {stage: 8 if stage == "blocked" else 4 for stage in STAGES} if SIMULATOR else None
    rows = matmul_rows(args.n, args.repeat, tiles)
    _, measured = bandwidth_rows(args.rows, args.rows, args.repeat)
    rows += measured + training_rows(args.batch, args.repeat, args.hidden)
    if SIMULATOR:  # timings of Python threads meet no GPU target; transfer counts still hold
        rows = [{**r, "met": r["met"] if r["unit"] == "copies" else None} for r in rows]
    report = {"date": datetime.date.today().isoformat(), "device": device_name(),
              "simulated": SIMULATOR, "tests": tests, "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    notes = [f"device: {report['device']}; {report['date']}",
             f"kernel tests: {tests.get('summary', tests.get('why'))}", f"written to {args.out}"]
    if rows[0]["baseline"] == "-":
        notes.append("no cuBLAS baseline: neither CuPy (make gpu-check installs cupy-cuda12x) nor "
                     "PyTorch with CUDA could run here")
    if SIMULATOR:
        notes.append("SIMULATED: these figures time Python threads, not a GPU")
    print(emit(rows, as_json=False, title="gpu-check", columns=COLUMNS, notes=notes))
    failed = tests.get("returncode", 0) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
