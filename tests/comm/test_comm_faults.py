"""Dead, hung and interrupted ranks and launchers end quickly and cleanly.

Every test here is bounded in time and checks, before and after, that no shared-memory segment
and no child process is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from comm_checks import have_mpi
from processes import children, gone, nothing_left_behind

from mlsys.comm import CommAborted, CommTimeout, WorkerError, launch
from mlsys.comm.ddp import DistributedDataParallel
from mlsys.comm.launcher import mpich_segments
from mlsys.models import mlp

ROOT = Path(__file__).resolve().parents[2]
MLSYS = [sys.executable, "-m", "mlsys.cli"]


@pytest.fixture(autouse=True)
def _no_leftovers():
    with nothing_left_behind():
        yield


# ---------------------------------------------------------------------------------------------
# launch(): forked workers

def _rank_dies(group) -> None:  # noqa: ANN001
    if group.rank == 1:
        os._exit(3)
    group.all_reduce(np.ones(1000))


def _rank_killed(group) -> None:  # noqa: ANN001
    if group.rank == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    group.all_reduce(np.ones(1000), algorithm="ring")


def _rank_hangs(group) -> None:  # noqa: ANN001
    if group.rank == 1:
        time.sleep(60)
    group.all_reduce(np.ones(1000))


def _rank_raises(group) -> None:  # noqa: ANN001
    if group.rank == 2:
        raise KeyError("boom")
    group.barrier()


def _rank_returns_early(group) -> None:  # noqa: ANN001
    if group.rank == 0:
        group.all_reduce(np.ones(10))


@pytest.mark.parametrize("fn,rank,message", [
    (_rank_dies, 1, "exited with code 3"),
    (_rank_killed, 2, "killed by SIGKILL"),
    (_rank_raises, 2, "KeyError: 'boom'"),
])
def test_a_failing_rank_is_named_at_once(fn, rank: int, message: str) -> None:  # noqa: ANN001
    start = time.monotonic()
    with pytest.raises(WorkerError, match=message) as info:
        launch(fn, 3, timeout=30)
    assert info.value.rank == rank
    assert CommAborted.__name__ not in str(info.value).split("\n")[1]
    assert time.monotonic() - start < 10  # the launcher aborts the group; no 30 s timeout


def test_a_hung_rank_makes_the_others_time_out() -> None:
    start = time.monotonic()
    with pytest.raises(WorkerError, match=CommTimeout.__name__) as info:
        launch(_rank_hangs, 2, timeout=1.0)
    assert "waiting for rank 1" in str(info.value) and info.value.rank == 0
    assert time.monotonic() - start < 10


def test_a_rank_that_returns_early_stops_the_ones_waiting_for_it() -> None:
    start = time.monotonic()
    with pytest.raises(WorkerError, match="rank 1 exited \\(code 0\\) while this rank waited"):
        launch(_rank_returns_early, 2, timeout=30)
    assert time.monotonic() - start < 10


def _ddp_with_a_dead_worker(group) -> None:  # noqa: ANN001
    import mlsys
    from mlsys.nn import functional as F

    model = DistributedDataParallel(mlp(hidden=32), group, bucket_bytes=1024)
    if group.rank == 1:
        os._exit(7)
    F.cross_entropy(model(mlsys.randn(8, 64)), mlsys.tensor(np.arange(8) % 10)).backward()


def test_ddp_under_a_dead_worker_blames_that_worker() -> None:
    with pytest.raises(WorkerError, match="exited with code 7") as info:
        launch(_ddp_with_a_dead_worker, 3, timeout=30)
    assert info.value.rank == 1


LAUNCHER = textwrap.dedent("""
    import os, time
    from mlsys.comm import launch

    def sleep(group):
        group.barrier()
        os.write(1, f"ready {os.getpid()}\\n".encode())  # one atomic write
        time.sleep(60)

    launch(sleep, 2)
""")


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)


def _ready(proc: subprocess.Popen, ranks: int = 2) -> tuple[list[int], str]:
    """Wait until ``ranks`` ranks printed ``ready PID``; their pids and the output so far."""
    seen, deadline = "", time.monotonic() + 60
    while len(re.findall(r"ready \d+\n", seen)) < ranks and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    return [int(p) for p in re.findall(r"ready (\d+)", seen)], seen


def _ranks_started(proc: subprocess.Popen, ranks: int = 2) -> list[int]:
    """Wait until the launcher has ``ranks`` children (before they even import anything)."""
    deadline = time.monotonic() + 60
    while len(children(proc.pid)) < ranks and time.monotonic() < deadline:
        time.sleep(0.005)
    return children(proc.pid)


def test_ctrl_c_on_launch_cleans_up() -> None:
    proc = _start([sys.executable, "-c", LAUNCHER])
    pids, _ = _ready(proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert len(pids) == 2 and gone(pids)


def test_workers_die_with_a_killed_launcher() -> None:
    proc = _start([sys.executable, "-c", LAUNCHER])
    pids, _ = _ready(proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert len(pids) == 2 and gone(pids)


# ---------------------------------------------------------------------------------------------
# mlsys run: a script on N interpreters

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from mlsys.comm import init_process_group

    group = init_process_group()
    mode = sys.argv[1]
    if group.rank == 1:
        if mode == "raise":
            raise KeyError("boom")
        if mode == "exit":
            sys.exit(3)
        if mode == "kill":
            os.kill(os.getpid(), 9)
        if mode == "early":
            sys.exit(0)
    if mode == "exit":
        time.sleep(60)  # not communicating: only the launcher can stop this rank
    group.all_reduce(np.ones(10))
    os.write(1, f"ready {os.getpid()}\\n".encode())
    time.sleep(60 if mode == "sleep" else 0)
""")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "rank.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize("mode,code,message", [
    ("raise", 1, "mlsys run: rank 1 exited with code 1"),
    ("exit", 3, "mlsys run: rank 1 exited with code 3; stopped 1 other rank(s)"),
    ("kill", 137, "mlsys run: rank 1 was killed by SIGKILL"),
    ("early", 1, "(rank(s) 1 had already exited with code 0)"),
])
def test_mlsys_run_exits_with_the_failing_ranks_code(script: Path, mode: str, code: int,
                                                     message: str) -> None:
    start = time.monotonic()
    result = subprocess.run([*MLSYS, "run", "-n", "2", "--timeout", "30", str(script), mode],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    if mode == "raise":  # the root cause keeps its traceback; the others say why they stopped
        assert result.stderr.count("Traceback") == 1
        assert "CommAborted: rank 0: the group was aborted: rank 1: KeyError: 'boom'" in result.stderr
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("sig,when", [(signal.SIGINT, "running"), (signal.SIGTERM, "running"),
                                      (signal.SIGTERM, "starting"), (signal.SIGKILL, "starting")])
def test_mlsys_run_ranks_die_with_their_launcher(script: Path, sig: signal.Signals,
                                                 when: str) -> None:
    proc = _start([*MLSYS, "run", "-n", "2", str(script), "sleep"])
    pids = _ranks_started(proc) if when == "starting" else _ready(proc)[0]
    assert len(pids) == 2
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # a terminal's Ctrl-C: the launcher's process group
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert gone(pids)
    if sig != signal.SIGKILL:
        assert "Traceback" not in err and proc.returncode == 128 + sig
        assert re.search(r"mlsys run: (interrupted|terminated); stopped \d rank", err), err


# ---------------------------------------------------------------------------------------------
# mlsys run --backend mpi

EARLY_EXIT = textwrap.dedent("""
    import os
    import numpy as np
    from mlsys.comm import init_process_group

    group = init_process_group()
    if group.rank == 1:
        os._exit(0)  # ends without finishing; MPICH then kills rank 0 and reports success
    group.all_reduce(np.ones(4))
""")


@pytest.mark.skipif(not have_mpi(), reason="mpi4py and mpiexec are not installed")
def test_mpi_a_rank_exiting_early_with_code_0_fails_the_job(tmp_path: Path) -> None:
    script = tmp_path / "early.py"
    script.write_text(EARLY_EXIT)
    before = mpich_segments()
    result = subprocess.run([*MLSYS, "run", "--backend", "mpi", "-n", "2", "--timeout", "20",
                             str(script)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1 and "did not finish the script" in result.stderr
    assert mpich_segments() <= before


@pytest.mark.skipif(not have_mpi(), reason="mpi4py and mpiexec are not installed")
def test_mpi_ctrl_c_is_clean(script: Path) -> None:
    before = mpich_segments()
    proc = _start([*MLSYS, "run", "--backend", "mpi", "-n", "2", str(script), "sleep"])
    pids, _ = _ready(proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(pids) == 2 and gone(pids)
    assert mpich_segments() <= before
