"""Start N real OS processes that form a process group: from Python and from the shell.

``launch(fn, world_size=4)`` forks N workers, runs ``fn(group, *args)`` in each and returns their
results in rank order. ``mlsys run -n 4 script.py`` starts N Python interpreters on a script that
calls :func:`mlsys.comm.init_process_group` (``--backend mpi`` hands the job to ``mpiexec``).

Both watch their workers: when one raises or dies, the group is aborted so the others raise
instead of waiting, stragglers are terminated, and the shared-memory segment is removed (its name
is removed as soon as every rank has mapped it, so even a killed launcher leaves nothing behind).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from .errors import CommAborted, WorkerError
from .group import ProcessGroup, set_default_group
from .shm import SharedMemoryTransport, create_segment, map_segment, pids, set_abort

GRACE_SECONDS = 2.0  # how long other ranks get to notice an abort before they are terminated


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_rank(world_size: int) -> int:
    """BLAS threads each rank may use so that the ranks together do not oversubscribe the CPUs."""
    return max(1, (os.cpu_count() or 1) // world_size)


def _limit_threads(world_size: int) -> None:
    """Cap this (forked) process's BLAS thread pools: spinning idle threads of N ranks sharing
    a few cores slow everything down many times over (torchrun sets OMP_NUM_THREADS=1 too)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(threads_per_rank(world_size))


def _worker(rank: int, segment: Any, timeout: float, fn: Callable, args: tuple, conn: Any) -> None:
    world_size = len(pids(segment))
    os.environ.update(MLSYS_RANK=str(rank), MLSYS_WORLD_SIZE=str(world_size))
    try:
        _limit_threads(world_size)
        group = ProcessGroup(SharedMemoryTransport(segment, rank, timeout))
        set_default_group(group)
        result = fn(group, *args)
    except BaseException as error:  # noqa: BLE001 - reported to the launcher, then exit
        set_abort(segment, f"rank {rank}: {type(error).__name__}: {error}", rank)
        conn.send(("error", isinstance(error, CommAborted), traceback.format_exc()))
        conn.close()
        sys.exit(1)
    conn.send(("ok", False, result))
    conn.close()


def _stop(procs: list, grace: float) -> None:
    """Wait up to ``grace`` seconds for processes, then terminate and finally kill them."""
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(1.0)
        if p.is_alive():
            p.kill()
            p.join()


def launch(fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 60.0,
           slots: int = 4, slot_bytes: int = 1 << 19) -> list[Any]:
    """Run ``fn(group, *args)`` on ``world_size`` forked processes; their results by rank.

    ``timeout`` bounds how long any operation waits on a silent peer. If a worker raises or
    dies, the others are aborted and :class:`WorkerError` reports the first real failure.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"launch: world_size must be a positive integer, got {world_size!r}")
    path = create_segment(world_size, slots, slot_bytes)
    try:
        segment = map_segment(path)
    finally:
        path.unlink()  # the mapping lives on in this process and (after fork) in the workers
    ctx = mp.get_context("fork")
    procs, conns = [], []
    try:
        for rank in range(world_size):
            parent_end, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, name=f"mlsys-rank-{rank}",
                               args=(rank, segment, timeout, fn, args, child_end))
            proc.start()
            child_end.close()
            procs.append(proc)
            conns.append(parent_end)
        return _collect(procs, conns, segment)
    finally:
        _stop(procs, GRACE_SECONDS)
        for c in conns:
            c.close()


def _collect(procs: list, conns: list, segment: Any) -> list[Any]:
    results: list[Any] = [None] * len(procs)
    failures: list[tuple[bool, int, str]] = []
    open_ranks = set(range(len(procs)))
    deadline = float("inf")  # after a failure, the others get GRACE_SECONDS to notice it
    while open_ranks and time.monotonic() < deadline:
        waitables = {conns[r]: r for r in open_ranks} | {procs[r].sentinel: r for r in open_ranks}
        for ready in wait(list(waitables), timeout=1.0):
            rank = waitables[ready]
            if rank not in open_ranks:
                continue
            report = None
            if conns[rank].poll():
                try:
                    report = conns[rank].recv()
                except EOFError:  # the pipe closed: the process died without reporting
                    pass
            if report is None:
                procs[rank].join(1.0)
                if procs[rank].exitcode is None:
                    continue
                report = ("error", False,
                          f"process exited with code {procs[rank].exitcode} without a result")
            status, aborted, payload = report
            open_ranks.discard(rank)
            if status == "ok":
                results[rank] = payload
            else:
                failures.append((aborted, rank, payload))
                set_abort(segment, f"rank {rank} failed or died", -1)
                deadline = min(deadline, time.monotonic() + GRACE_SECONDS)
    if failures:
        _, rank, message = min(failures, key=lambda f: f[0])  # a root cause before an abort
        raise WorkerError(rank, message)
    return results


# ---------------------------------------------------------------------------------------------
# mlsys run

def mpiexec_path() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError("mlsys run --backend mpi: no mpiexec found "
                                "(pip install 'mlsys[mpi]' provides one)")
    return found


def mpich_segments() -> set[Path]:
    """MPICH's shared-memory segments on this machine (it unlinks them itself unless aborted)."""
    shm = Path("/dev/shm")
    return set(shm.glob("mpich_shm_*")) if shm.is_dir() else set()


def run_script(script: list[str], world_size: int, timeout: float = 60.0) -> int:
    """Run ``python script...`` on ``world_size`` processes over shared memory; exit code."""
    path = create_segment(world_size)
    segment = map_segment(path)
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(world_size):
            env = dict(os.environ, MLSYS_BACKEND="shm", MLSYS_SHM=str(path),
                       MLSYS_RANK=str(rank), MLSYS_WORLD_SIZE=str(world_size),
                       MLSYS_COMM_TIMEOUT=str(timeout))
            threads = str(threads_per_rank(world_size))
            env.update({v: os.environ.get(v, threads) for v in THREAD_VARIABLES})
            procs.append(subprocess.Popen([sys.executable, *script], env=env))
        attached = pids(segment)
        code = 0
        while any(p.poll() is None for p in procs):
            if path.exists() and (attached != 0).all():
                path.unlink()
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed and not code:
                code = failed[0] if failed[0] > 0 else 128 - failed[0]
                set_abort(segment, "a rank exited with an error", -1)
                deadline = time.monotonic() + GRACE_SECONDS
                while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                    time.sleep(0.05)
                break
            time.sleep(0.02)
        bad = [p.returncode for p in procs if p.returncode not in (None, 0)]
        return code or (bad[0] if bad and bad[0] > 0 else 128 - bad[0] if bad else 0)
    except KeyboardInterrupt:
        return 130
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if path.exists():
            path.unlink()


def main(argv: list[str]) -> int:
    """``mlsys run -n N [--backend shm|mpi] [--timeout S] script.py [args...]``."""
    parser = argparse.ArgumentParser(prog="mlsys run", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--nprocs", type=int, required=True, help="number of processes")
    parser.add_argument("--backend", choices=("shm", "mpi"), default="shm")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds an operation waits on a silent peer before raising")
    parser.add_argument("script", help="the Python script every rank runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    ns = parser.parse_args(argv)
    if ns.nprocs < 1:
        parser.error(f"-n must be a positive number of processes, got {ns.nprocs}")
    if not Path(ns.script).is_file():
        parser.error(f"script {ns.script!r} does not exist")
    if ns.backend == "mpi":
        env = dict(os.environ, MLSYS_BACKEND="mpi", MLSYS_COMM_TIMEOUT=str(ns.timeout))
        threads = str(threads_per_rank(ns.nprocs))
        env.update({v: os.environ.get(v, threads) for v in THREAD_VARIABLES})
        # ``python -m mpi4py`` aborts the whole job when a rank dies of an uncaught exception,
        # so the other ranks stop at once instead of timing out
        cmd = [mpiexec_path(), "-n", str(ns.nprocs), sys.executable, "-m", "mpi4py", ns.script,
               *ns.args]
        before = mpich_segments()
        code = subprocess.call(cmd, env=env)
        if code:  # an aborted MPICH job leaves its shared-memory segment behind: remove it
            for leftover in mpich_segments() - before:
                leftover.unlink(missing_ok=True)
        return code
    return run_script([ns.script, *ns.args], ns.nprocs, ns.timeout)
