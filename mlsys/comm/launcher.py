"""Start N real OS processes that form a process group: from Python and from the shell.

``launch(fn, world_size=4)`` forks N workers, runs ``fn(group, *args)`` in each and returns their
results in rank order. ``mlsys run``: run a script on N processes that form a process group.
``mlsys run -n 4 script.py`` starts 4 Python interpreters on a script that calls
:func:`mlsys.comm.init_process_group` (``--backend mpi`` hands the job to ``mpiexec``).

Both watch every worker at once: when one raises, exits or is killed, the group is aborted so the
others raise instead of waiting, stragglers are stopped, and the failing rank is named (its exit
code becomes the job's). Workers die with their launcher, however it ends (the kernel sends them
SIGKILL: ``PR_SET_PDEATHSIG``), and the shared-memory segment has no name, so nothing is ever left
behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from .. import cliargs
from . import native
from .errors import CommAborted, CommError, WorkerError
from .group import ProcessGroup, set_default_group
from .shm import (
    MAX_RANKS,
    SharedMemoryTransport,
    aborted_by,
    create_segment,
    map_segment,
    mark_exited,
    set_abort,
)
from .transport import check_timeout

GRACE_SECONDS = 2.0  # how long other ranks get to notice an abort before they are terminated
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PR_SET_PDEATHSIG = 1
# looked up now, not between fork and exec (where another thread may hold the loader's lock)
_prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


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


def die_with_parent(parent: int, own_group: bool = False) -> None:
    """Have the kernel kill this process when its parent ``parent`` ends (Linux); exit now if
    it already has. With ``own_group`` the process also leads a process group of its own, so
    that a terminal's Ctrl-C reaches only the launcher. Safe to call between fork and exec."""
    if own_group:
        os.setpgid(0, 0)
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``was killed by SIGKILL`` (negative codes are signals)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def shell_code(code: int) -> int:
    """A process's exit code as a shell reports it (128 + n when killed by signal n)."""
    return code if code >= 0 else 128 - code


# ---------------------------------------------------------------------------------------------
# launch(): forked workers running a Python function

_ROOT_CAUSE, _COMM_ERROR, _ABORTED = 0, 1, 2  # how a failure ranks when choosing whom to blame


def _worker(rank: int, segment: Any, timeout: float, fn: Callable, args: tuple, conn: Any,
            parent: int, world_size: int) -> None:
    die_with_parent(parent)
    os.environ.update(MLSYS_RANK=str(rank), MLSYS_WORLD_SIZE=str(world_size))
    try:
        _limit_threads(world_size)
        group = ProcessGroup(SharedMemoryTransport(segment, rank, timeout))
        set_default_group(group)
        result = fn(group, *args)
    except BaseException as error:  # noqa: BLE001 - reported to the launcher, then exit
        kind = (_ABORTED if isinstance(error, CommAborted)
                else _COMM_ERROR if isinstance(error, CommError) else _ROOT_CAUSE)
        set_abort(segment, f"rank {rank}: {type(error).__name__}: {error}", rank)
        conn.send(("error", kind, traceback.format_exc()))
        conn.close()
        os._exit(1)
    conn.send(("ok", None, result))
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
    dies, the others are aborted and :class:`WorkerError` reports the root cause: the rank that
    raised or died first, not the ones that then failed because of it.
    """
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise ValueError(f"launch: world_size must be a positive integer, got {world_size!r}")
    check_timeout(timeout)
    native.warm_up()
    fd = create_segment(world_size, slots, slot_bytes)
    try:
        segment = map_segment(fd)
    finally:
        os.close(fd)  # the mapping lives on in this process and (after fork) in the workers
    ctx = mp.get_context("fork")
    procs, conns = [], []
    try:
        gc.freeze()  # the children's collections skip what they inherit: no copy-on-write of it
        try:
            for rank in range(world_size):
                parent_end, child_end = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker, name=f"mlsys-rank-{rank}",
                                   args=(rank, segment, timeout, fn, args, child_end, os.getpid(),
                                         world_size))
                proc.start()
                child_end.close()
                procs.append(proc)
                conns.append(parent_end)
        finally:
            gc.unfreeze()
        return _collect(procs, conns, segment)
    finally:
        set_abort(segment, "the launcher stopped", -1)
        _stop(procs, GRACE_SECONDS)
        for c in conns:
            c.close()


def _collect(procs: list, conns: list, segment: Any) -> list[Any]:
    results: list[Any] = [None] * len(procs)
    failures: list[tuple[int, int, str]] = []  # (kind, rank, message) in the order seen
    open_ranks = set(range(len(procs)))
    deadline = float("inf")  # after a failure, the others get GRACE_SECONDS to notice it
    while open_ranks and time.monotonic() < deadline:
        waitables = {conns[r]: r for r in open_ranks} | {procs[r].sentinel: r for r in open_ranks}
        for ready in wait(list(waitables), timeout=1.0):
            rank = waitables[ready]
            if rank not in open_ranks:
                continue
            report = _report(procs[rank], conns[rank])
            if report is None:
                continue
            open_ranks.discard(rank)
            status, kind, payload = report
            if status == "ok":
                results[rank] = payload
                continue
            failures.append((kind, rank, payload))
            set_abort(segment, f"rank {rank} failed or died", -1)
            deadline = min(deadline, time.monotonic() + GRACE_SECONDS)
        for rank in range(len(procs)):
            if procs[rank].exitcode is not None:
                mark_exited(segment, rank, procs[rank].exitcode)
    if failures:
        kind, rank, message = min(failures, key=lambda f: f[0])  # stable: the first of its kind
        raise WorkerError(rank, message)
    return results


def _report(proc: Any, conn: Any) -> tuple | None:
    """The worker's report, or one made up for a worker that died without one; None: neither yet."""
    if conn.poll():
        try:
            return conn.recv()
        except EOFError:  # the pipe closed: the process died without reporting
            pass
    proc.join(1.0)
    if proc.exitcode is None:
        return None
    return ("error", _ROOT_CAUSE, f"process {describe_exit(proc.exitcode)} without a result")


# ---------------------------------------------------------------------------------------------
# mlsys run: a script on N interpreters

class _Terminated(Exception):
    """The launcher received SIGTERM: stop the ranks and exit 143."""


@contextlib.contextmanager
def _sigterm_noted(interrupt: bool) -> Iterator[Callable[[], None]]:
    """Note SIGTERM while the ranks run (main thread only); yields a check that raises
    :class:`_Terminated` once it came. With ``interrupt`` the handler raises at once as well, to
    break a blocking wait; without, it only notes the signal, so one that lands while a rank is
    being forked (in an at-fork callback, where CPython would print and swallow the exception) is
    acted on at the next check."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if interrupt:
            raise _Terminated()

    def check() -> None:
        if received:
            raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: the ranks still die with us (PR_SET_PDEATHSIG)
        yield check
        return
    try:
        yield check
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rank_env(world_size: int, timeout: float, **extra: str) -> dict[str, str]:
    env = dict(os.environ, MLSYS_WORLD_SIZE=str(world_size), MLSYS_COMM_TIMEOUT=repr(timeout),
               **extra)
    threads = str(threads_per_rank(world_size))
    env.update({v: os.environ.get(v, threads) for v in THREAD_VARIABLES})
    return env


def _say(message: str) -> None:
    print(f"mlsys run: {message}", file=sys.stderr, flush=True)


def run_script(script: list[str], world_size: int, timeout: float = 60.0) -> int:
    """Run ``python script...`` on ``world_size`` processes over shared memory; the exit code.

    The job's exit code is the first failing rank's (128 + n if signal n killed it); a line on
    stderr names that rank. Ctrl-C or SIGTERM stop every rank (exit 130 or 143).
    """
    fd = create_segment(world_size)
    segment = map_segment(fd)
    procs: list[subprocess.Popen] = []
    me = os.getpid()
    try:
        with _sigterm_noted(interrupt=False) as terminated:
            for rank in range(world_size):
                env = _rank_env(world_size, timeout, MLSYS_BACKEND="shm", MLSYS_SHM_FD=str(fd),
                                MLSYS_RANK=str(rank))
                # each rank leads its own process group: Ctrl-C reaches the launcher, which
                # stops the ranks and everything they started
                procs.append(subprocess.Popen([sys.executable, *script], env=env, pass_fds=(fd,),
                                              stdin=subprocess.DEVNULL,
                                              preexec_fn=lambda: die_with_parent(me, True)))
                terminated()
            os.close(fd)
            fd = -1
            return _watch(procs, segment, terminated)
    except KeyboardInterrupt:
        _say(f"interrupted; stopped {_alive(procs)} rank(s)")
        return 130
    except _Terminated:
        _say(f"terminated; stopped {_alive(procs)} rank(s)")
        return 143
    finally:
        if fd >= 0:
            os.close(fd)
        set_abort(segment, "the launcher stopped", -1)
        _terminate(procs)


def _alive(procs: list[subprocess.Popen]) -> int:
    return sum(p.poll() is None for p in procs)


def _watch(procs: list[subprocess.Popen], segment: Any, terminated: Callable[[], None]) -> int:
    """Wait for every rank; at the first failure abort the group, stop the others, name it.
    ``terminated`` raises when the launcher has been told to stop."""
    codes: dict[int, int] = {}
    while len(codes) < len(procs):
        terminated()
        failed = []
        for rank, p in enumerate(procs):
            if rank not in codes and p.poll() is not None:
                codes[rank] = p.returncode
                mark_exited(segment, rank, p.returncode)
                if p.returncode:
                    failed.append(rank)
        if failed:
            blamed = aborted_by(segment)
            rank = blamed if blamed in failed else failed[0]
            set_abort(segment, f"rank {rank} {describe_exit(codes[rank])}", -1)
            deadline = time.monotonic() + GRACE_SECONDS
            while _alive(procs) and time.monotonic() < deadline:
                time.sleep(0.02)
            stopped = _alive(procs)
            early = [r for r, code in codes.items() if code == 0]
            _say(f"rank {rank} {describe_exit(codes[rank])}"
                 + (f"; stopped {stopped} other rank(s)" if stopped else "")
                 + (f" (rank(s) {', '.join(map(str, early))} had already exited with code 0)"
                    if early else ""))
            return shell_code(codes[rank])
        time.sleep(0.005)
    return 0


def _terminate(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each running rank's process group, then SIGKILL what is left after a second."""
    for sig, wait_s in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
        running = [p for p in procs if p.poll() is None]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
        deadline = time.monotonic() + wait_s
        for p in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------------------------------------
# mlsys run --backend mpi

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


def _mapped_anywhere(path: Path) -> bool:
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            if str(path) in maps.read_text():
                return True
    return False


def run_mpi(script: list[str], world_size: int, timeout: float = 60.0) -> int:
    """Run the script under ``mpiexec``; a rank that ends early (even with code 0) fails the job.

    Each rank runs through :mod:`mlsys.comm.mpi_rank`, which aborts the job on an uncaught
    exception and marks the ranks that finished; MPICH's segments left by an aborted job are
    removed.
    """
    before = mpich_segments()
    with tempfile.TemporaryDirectory(prefix="mlsys-run-") as marks:
        cmd = [mpiexec_path(), "-n", str(world_size), sys.executable, "-m", "mlsys.comm.mpi_rank",
               marks, *script]
        proc = subprocess.Popen(cmd, env=_rank_env(world_size, timeout, MLSYS_BACKEND="mpi"),
                                stdin=subprocess.DEVNULL, preexec_fn=os.setpgrp)
        try:
            with _sigterm_noted(interrupt=True):
                code = proc.wait()
        except (KeyboardInterrupt, _Terminated) as stop:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _say(f"{'interrupted' if isinstance(stop, KeyboardInterrupt) else 'terminated'}; "
                 "stopped the MPI job")
            code = 130 if isinstance(stop, KeyboardInterrupt) else 143
        else:
            finished = {int(p.name) for p in Path(marks).iterdir()}
            missing = sorted(set(range(world_size)) - finished)
            if code == 0 and missing:
                _say(f"rank(s) {', '.join(map(str, missing))} did not finish the script although "
                     "mpiexec reported success (a rank that exits early makes MPICH stop the "
                     "others)")
                code = 1
    _remove_unmapped(mpich_segments() - before)
    return code


def _remove_unmapped(paths: set[Path], within: float = 3.0) -> None:
    """Unlink each of ``paths`` once no process maps it (an aborted job's ranks may still be
    ending when mpiexec returns); a segment still in use after ``within`` seconds is kept."""
    deadline, pending = time.monotonic() + within, set(paths)
    while pending:
        for path in [p for p in pending if not _mapped_anywhere(p)]:
            path.unlink(missing_ok=True)
            pending.discard(path)
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def _parser() -> cliargs.ArgumentParser:
    parser = cliargs.ArgumentParser(prog="mlsys run", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--nprocs", type=cliargs.int_range(1, MAX_RANKS), required=True,
                        help=f"number of processes (1 to {MAX_RANKS})")
    parser.add_argument("--backend", choices=("shm", "mpi"), default="shm")
    parser.add_argument("--timeout", type=cliargs.positive_float, default=60.0,
                        help="seconds an operation waits on a silent peer before raising")
    parser.add_argument("script", type=cliargs.input_file, help="the Python script every rank runs")
    parser.add_argument("args", nargs="...", help="arguments for the script")
    return parser


def main(argv: list[str]) -> int:
    """``mlsys run -n N [--backend shm|mpi] [--timeout S] script.py [args...]``."""
    ns = _parser().parse_args(argv)
    script = [str(ns.script), *ns.args]
    if ns.backend == "mpi":
        try:
            return run_mpi(script, ns.nprocs, ns.timeout)
        except FileNotFoundError as error:
            return cliargs.fail("mlsys run", str(error))
    return run_script(script, ns.nprocs, ns.timeout)
