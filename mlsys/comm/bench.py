"""``mlsys bench allreduce``: all-reduce time and bandwidth per algorithm, nccl-tests style.

For each world size and message size it reports the time of one all-reduce (the slowest rank's
mean over repetitions), the algorithm bandwidth ``size / time`` and the bus bandwidth
``algbw * 2(p-1)/p``, the figure that is comparable across world sizes because it is what each
rank's link must carry (NVIDIA nccl-tests, doc/PERFORMANCE.md). The same table holds MPICH's
``MPI_Allreduce`` through mpi4py and PyTorch's gloo backend when they are installed, measured in
the same run on the same machine; ``vs_mpich`` is MPICH's time over this one (> 1: faster).
Implementations alternate over ``--rounds`` rounds and each row keeps its best round, so a burst
of load from other programs does not land on one of them only.

``--ddp`` measures data-parallel training instead: one step's compute alone, its gradient
all-reduces alone, the step without overlap, with overlap, and the ideal ``max(compute, comm)``.
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
from typing import Any

import numpy as np

from .. import cliargs
from ..bench.report import emit
from .launcher import launch, mpiexec_path
from .schedules import ALGORITHMS
from .shm import MAX_RANKS

DEFAULT_SIZES = tuple(4 << (2 * i) << 10 for i in range(8))  # 4 KiB .. 64 MiB, steps of 4x
DEFAULT_ALGORITHMS = ("auto", "ring", "halving_doubling", "recursive_doubling")
CHOICES = ("auto", *ALGORITHMS)
MAX_BYTES = 1 << 30
LATENCY_TARGET, BANDWIDTH_SIZES = 2.0, (16 << 20, 64 << 20)


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
            baselines: bool = True, budget_bytes: float = 4e8, rounds: int = 1) -> list[dict]:
    """Rows of (world size, implementation, bytes, seconds, algbw, busbw, ratio to MPICH).

    ``budget_bytes`` caps the bytes each measurement moves (fewer repetitions for big
    messages); implementations alternate over ``rounds`` rounds and each row keeps its best.
    """
    best: dict[tuple[int, str, int], float] = {}
    for _ in range(rounds):
        for p in world_sizes:
            measured = launch(_mlsys_worker, p, sizes, algorithms, budget_bytes, timeout=600)[0]
            if baselines:
                measured += (run_mpich(p, sizes) or []) + (run_gloo(p, sizes) or [])
            for r in measured:
                key = (p, r["impl"], r["bytes"])
                best[key] = min(best.get(key, float("inf")), r["seconds"])
    rows = []
    for (p, impl, nbytes), seconds in best.items():
        base = best.get((p, "mpich (mpi4py)", nbytes))
        algbw = nbytes / seconds / 1e9
        rows.append({"ranks": p, "impl": impl, "size": _size(nbytes), "bytes": nbytes,
                     "time_us": seconds * 1e6, "algbw_GBs": algbw,
                     "busbw_GBs": algbw * bus_factor(p),
                     "vs_mpich": None if base is None else base / seconds})
    return rows


def verdicts(rows: Sequence[dict]) -> list[str]:
    """The issue's targets for ``mlsys auto`` against MPICH, measured in these rows."""
    notes = []
    auto = [r for r in rows if r["impl"] == "mlsys auto" and r["vs_mpich"] is not None]
    for p in sorted({r["ranks"] for r in auto}):
        mine = {r["bytes"]: r for r in auto if r["ranks"] == p}
        if 4096 in mine:
            ratio = 1 / mine[4096]["vs_mpich"]
            notes.append(f"target p={p}: 4 KiB latency <= {LATENCY_TARGET:g}x MPICH's: "
                         f"{ratio:.2f}x, {'met' if ratio <= LATENCY_TARGET else 'NOT met'}")
        big = [mine[n]["vs_mpich"] for n in BANDWIDTH_SIZES if n in mine]
        if big:
            notes.append(f"target p={p}: 16-64 MiB bus bandwidth >= MPICH's: "
                         f"{min(big):.2f}x at worst, {'met' if min(big) >= 1 else 'NOT met'}")
    return notes


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KiB"


# ---------------------------------------------------------------------------------------------
# --ddp: does overlapping communication with backward pay?

def _ddp_worker(group, hidden: int, depth: int, batch: int, steps: int,  # noqa: ANN001
                bucket_bytes: int) -> dict[str, Any]:
    import mlsys
    from mlsys import models
    from mlsys.nn import functional as F

    from .ddp import DistributedDataParallel, flatten

    mlsys.manual_seed(group.rank)
    x = mlsys.randn(batch, 64)
    y = mlsys.tensor(np.arange(batch) % 10)

    def ddp(overlap: bool) -> tuple[DistributedDataParallel, Callable[[], None]]:
        model = DistributedDataParallel(models.mlp(hidden=hidden, depth=depth), group,
                                        bucket_bytes=bucket_bytes, overlap=overlap)

        def step() -> None:
            for p in model.parameters():
                p.grad = None
            F.cross_entropy(model(x), y).backward()

        return model, step

    plain, plain_step = ddp(overlap=False)
    overlapped, overlapped_step = ddp(overlap=True)
    plain_step()
    flats = [flatten([p.grad.data for p in bucket]) for bucket in plain.buckets]

    def compute() -> None:
        with plain.no_sync():
            plain_step()

    variants = {"compute": compute, "comm": lambda: [group.all_reduce(f, op="mean") for f in flats],
                "no_overlap": plain_step, "overlap": overlapped_step}
    best = dict.fromkeys(variants, float("inf"))
    for step in variants.values():  # warm-up
        step()
    for _ in range(steps):  # the variants alternate, so a burst of load lands on all of them
        for name, step in variants.items():
            group.barrier()
            start = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - start)
    plain.close()
    overlapped.close()
    found: dict[str, Any] = {name: float(group.all_reduce(np.array([t]), op="max")[0])
                             for name, t in best.items()}
    return {**found, "buckets": len(flats), "grad_MB": sum(f.nbytes for f in flats) / 1e6}


def ddp_rows(world_sizes: Sequence[int], hidden: int, depth: int, batch: int, steps: int,
             bucket_bytes: int) -> list[dict]:
    rows = []
    for p in world_sizes:
        r = launch(_ddp_worker, p, hidden, depth, batch, steps, bucket_bytes, timeout=600)[0]
        ideal = max(r["compute"], r["comm"])
        rows.append({"ranks": p, "grad_MB": r["grad_MB"], "buckets": r["buckets"],
                     "compute_ms": 1e3 * r["compute"], "comm_ms": 1e3 * r["comm"],
                     "no_overlap_ms": 1e3 * r["no_overlap"], "overlap_ms": 1e3 * r["overlap"],
                     "ideal_ms": 1e3 * ideal, "overlap_speedup": r["no_overlap"] / r["overlap"]})
    return rows


def _parser() -> cliargs.ArgumentParser:
    p = cliargs.ArgumentParser(prog="mlsys bench allreduce", description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=cliargs.comma_list(cliargs.int_range(2, MAX_RANKS)),
                   default=[2, 4], help="world sizes, comma-separated (default 2,4)")
    p.add_argument("--sizes", type=cliargs.comma_list(cliargs.multiple_of(4, 4, MAX_BYTES)),
                   default=list(DEFAULT_SIZES), help="message sizes in bytes (multiples of 4), "
                   "comma-separated")
    p.add_argument("--algorithms", type=cliargs.comma_list(cliargs.one_of(CHOICES), unique=True),
                   default=list(DEFAULT_ALGORITHMS),
                   help=f"among {', '.join(CHOICES)} (auto: the compiled shared-memory path)")
    p.add_argument("--rounds", type=cliargs.int_range(1, 100), default=2,
                   help="alternating rounds; each row keeps its best (default 2)")
    p.add_argument("--no-baselines", action="store_true", help="skip MPICH and gloo")
    p.add_argument("--ddp", action="store_true",
                   help="time data-parallel steps without and with overlap instead")
    p.add_argument("--hidden", type=cliargs.int_range(1, 1 << 14), default=1024,
                   help="--ddp: MLP width (default 1024)")
    p.add_argument("--depth", type=cliargs.int_range(1, 64), default=4,
                   help="--ddp: hidden layers (default 4)")
    p.add_argument("--batch", type=cliargs.int_range(1, 1 << 16), default=512,
                   help="--ddp: samples per rank per step (default 512)")
    p.add_argument("--steps", type=cliargs.int_range(1, 10_000), default=5,
                   help="--ddp: timed steps per variant; the best is kept (default 5)")
    p.add_argument("--bucket-mb", type=cliargs.float_range(1e-3, 1024), default=1.0,
                   help="--ddp: gradient bucket size in MB (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--mpi-worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    if ns.mpi_worker:
        rows = _mpi_worker(ns.sizes)
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            Path(ns.mpi_worker).write_text(json.dumps(rows))
        return 0
    load = f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs at the start"
    if ns.ddp:
        rows = ddp_rows(ns.ranks, ns.hidden, ns.depth, ns.batch, ns.steps,
                        int(ns.bucket_mb * 1e6))
        notes = [f"MLP 64 -> {ns.hidden} x {ns.depth} -> 10, batch {ns.batch} per rank; best of "
                 f"{ns.steps} steps; ideal = max(compute, comm); {load}"]
        print(emit(rows, as_json=ns.json, title="data-parallel step: overlap of backward and "
                   "all-reduce", notes=notes))
        return 0
    rows = collect(ns.ranks, ns.sizes, ns.algorithms, not ns.no_baselines, rounds=ns.rounds)
    columns = ["ranks", "impl", "size", "time_us", "algbw_GBs", "busbw_GBs", "vs_mpich"]
    notes = [f"float32 sum; time = slowest rank's mean, best of {ns.rounds} round(s); "
             "busbw = algbw * 2(p-1)/p; vs_mpich = MPICH time / this time (>1: faster); " + load,
             *verdicts(rows)]
    print(emit(rows, as_json=ns.json, title="all-reduce (nccl-tests style)", columns=columns,
               notes=notes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
