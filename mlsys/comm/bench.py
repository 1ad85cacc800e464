"""``mlsys bench allreduce``: all-reduce time and bandwidth per algorithm, nccl-tests style.

For each world size and message size it reports the time of one all-reduce (the slowest rank's
mean over repetitions), the algorithm bandwidth ``size / time`` and the bus bandwidth
``algbw * 2(p-1)/p``, the figure that is comparable across world sizes because it is what each
rank's link must carry (NVIDIA nccl-tests, doc/PERFORMANCE.md). The same table holds MPICH's
``MPI_Allreduce`` through mpi4py and PyTorch's gloo backend when they are installed, measured in
the same run on the same machine; ``vs mpich`` is mlsys bus bandwidth over MPICH's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..bench.report import emit
from .launcher import launch, mpiexec_path
from .schedules import ALGORITHMS

DEFAULT_SIZES = tuple(4 << (2 * i) << 10 for i in range(8))  # 4 KiB .. 64 MiB, steps of 4x
DEFAULT_ALGORITHMS = ("ring", "halving_doubling", "recursive_doubling", "double_binary_tree")


def repetitions(nbytes: int, budget_bytes: float = 4e8, most: int = 200) -> int:
    """Enough repetitions to average out noise without moving more than ``budget_bytes``."""
    return int(max(3, min(most, budget_bytes // max(nbytes, 1))))


def time_collective(run: Callable[[], None], barrier: Callable[[], None],
                    slowest: Callable[[float], float], reps: int) -> float:
    """Mean seconds per call of ``run`` over ``reps`` calls, as seen by the slowest rank.

    As many untimed calls come first: page faults, caches, and the ranks settling on cores of
    their own (the first hundred small collectives after a launch run several times slower).
    """
    for _ in range(reps):
        run()
    barrier()
    start = time.perf_counter()
    for _ in range(reps):
        run()
    return slowest((time.perf_counter() - start) / reps)


def _mlsys_worker(group, sizes: Sequence[int], algorithms: Sequence[str],  # noqa: ANN001
                  budget_bytes: float) -> list[dict]:
    rows = []
    for algorithm in algorithms:
        for nbytes in sizes:
            x = np.zeros(nbytes // 4, np.float32)
            seconds = time_collective(
                lambda x=x, a=algorithm: group.all_reduce(x, algorithm=a), group.barrier,
                lambda t: float(group.all_reduce(np.array([t]), op="max")[0]),
                repetitions(nbytes, budget_bytes))
            rows.append({"impl": f"mlsys {algorithm}", "bytes": nbytes, "seconds": seconds})
    return rows


def _mpi_worker(sizes: Sequence[int]) -> list[dict]:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rows = []
    for nbytes in sizes:
        x = np.zeros(nbytes // 4, np.float32)
        out = np.empty_like(x)
        seconds = time_collective(
            lambda x=x, out=out: comm.Allreduce(x, out, op=MPI.SUM), comm.Barrier,
            lambda t: comm.allreduce(t, op=MPI.MAX), repetitions(nbytes))
        rows.append({"impl": "mpich (mpi4py)", "bytes": nbytes, "seconds": seconds})
    return rows


def _gloo_worker(group, sizes: Sequence[int], store: str) -> list[dict]:  # noqa: ANN001
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=group.rank,
                            world_size=group.world_size)
    try:
        rows = []
        for nbytes in sizes:
            x = torch.zeros(nbytes // 4, dtype=torch.float32)

            def slowest(t: float) -> float:
                value = torch.tensor([t], dtype=torch.float64)
                dist.all_reduce(value, op=dist.ReduceOp.MAX)
                return float(value[0])

            seconds = time_collective(lambda x=x: dist.all_reduce(x), dist.barrier, slowest,
                                      repetitions(nbytes))
            rows.append({"impl": "torch gloo", "bytes": nbytes, "seconds": seconds})
        return rows
    finally:
        dist.destroy_process_group()


def run_mpich(world_size: int, sizes: Sequence[int]) -> list[dict] | None:
    """MPICH's all-reduce on ``world_size`` ranks via mpiexec, or None when MPI is missing."""
    try:
        import mpi4py  # noqa: F401

        mpiexec = mpiexec_path()
    except (ImportError, FileNotFoundError):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [mpiexec, "-n", str(world_size), sys.executable, "-m", "mlsys.comm.bench",
               "--mpi-worker", str(out), "--sizes", ",".join(map(str, sizes))]
        subprocess.run(cmd, check=True, timeout=1800, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def run_gloo(world_size: int, sizes: Sequence[int]) -> list[dict] | None:
    """PyTorch gloo's all-reduce, or None when PyTorch is not installed."""
    try:
        import torch.distributed  # noqa: F401
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return launch(_gloo_worker, world_size, sizes, os.path.join(tmp, "store"),
                      timeout=600)[0]


def bus_factor(world_size: int) -> float:
    return 2 * (world_size - 1) / world_size


def collect(world_sizes: Sequence[int], sizes: Sequence[int], algorithms: Sequence[str],
            baselines: bool = True, budget_bytes: float = 4e8) -> list[dict]:
    """Rows of (world size, implementation, bytes, seconds, algbw, busbw, ratio to MPICH).

    ``budget_bytes`` caps the bytes each measurement moves (fewer repetitions for big messages).
    """
    rows = []
    for p in world_sizes:
        measured = launch(_mlsys_worker, p, sizes, algorithms, budget_bytes, timeout=600)[0]
        reference = {}
        if baselines:
            mpich = run_mpich(p, sizes) or []
            reference = {r["bytes"]: r["seconds"] for r in mpich}
            measured += mpich + (run_gloo(p, sizes) or [])
        for r in measured:
            algbw = r["bytes"] / r["seconds"] / 1e9
            base = reference.get(r["bytes"])
            rows.append({"ranks": p, "impl": r["impl"], "size": _size(r["bytes"]),
                         "bytes": r["bytes"], "time_us": r["seconds"] * 1e6,
                         "algbw_GBs": algbw, "busbw_GBs": algbw * bus_factor(p),
                         "vs_mpich": None if base is None else base / r["seconds"]})
    return rows


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KiB"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlsys bench allreduce", description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", default="2,4", help="world sizes, comma-separated")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="message sizes in bytes, comma-separated")
    parser.add_argument("--algorithms", default=",".join(DEFAULT_ALGORITHMS),
                        help=f"mlsys algorithms among {', '.join(ALGORITHMS)}")
    parser.add_argument("--no-baselines", action="store_true", help="skip MPICH and gloo")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--mpi-worker", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    sizes = [int(s) for s in ns.sizes.split(",")]
    if any(s < 4 or s % 4 for s in sizes):
        parser.error(f"--sizes must be positive multiples of 4 bytes (float32), got {ns.sizes}")
    if ns.mpi_worker:
        rows = _mpi_worker(sizes)
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            Path(ns.mpi_worker).write_text(json.dumps(rows))
        return 0
    algorithms = ns.algorithms.split(",")
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        parser.error(f"unknown algorithms {unknown}; expected some of {list(ALGORITHMS)}")
    world_sizes = [int(p) for p in ns.ranks.split(",")]
    if any(p < 2 for p in world_sizes):
        parser.error(f"--ranks must be at least 2, got {ns.ranks}")
    rows = collect(world_sizes, sizes, algorithms, not ns.no_baselines)
    columns = ["ranks", "impl", "size", "time_us", "algbw_GBs", "busbw_GBs", "vs_mpich"]
    notes = [f"{os.cpu_count()} CPUs; float32 sum; time = slowest rank's mean; "
             "busbw = algbw * 2(p-1)/p; vs_mpich = MPICH time / this time (>1: faster)"]
    print(emit(rows, as_json=ns.json, title="all-reduce (nccl-tests style)", columns=columns,
               notes=notes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
