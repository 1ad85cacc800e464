"""Dead and hung ranks raise instead of hanging; memory and processes are always cleaned up."""

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

from mlsys.comm import CommAborted, CommTimeout, WorkerError, launch
from mlsys.comm.shm import PREFIX, SHM_DIR

ROOT = Path(__file__).resolve().parents[2]


def segments() -> set[str]:
    return {p.name for p in SHM_DIR.glob(f"{PREFIX}*")}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def children() -> list[int]:
    """Live child processes of this process."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def _no_leftovers():
    before = segments()
    yield
    assert segments() == before, "a shared-memory segment was left behind"
    assert not children(), "a worker process was left behind"


def _rank_dies(group) -> None:  # noqa: ANN001
    if group.rank == 1:
        os._exit(3)
    group.all_reduce(np.ones(1000))


def _rank_hangs(group) -> None:  # noqa: ANN001
    if group.rank == 1:
        time.sleep(60)
    group.all_reduce(np.ones(1000))


def _rank_raises(group) -> None:  # noqa: ANN001
    if group.rank == 2:
        raise KeyError("boom")
    group.barrier()


def test_a_dead_rank_makes_the_others_raise_quickly() -> None:
    start = time.monotonic()
    with pytest.raises(WorkerError, match="exited with code 3") as info:
        launch(_rank_dies, 3, timeout=30)
    assert info.value.rank == 1
    assert time.monotonic() - start < 10  # the launcher aborts the group; no 30 s timeout


def test_a_hung_rank_makes_the_others_time_out() -> None:
    start = time.monotonic()
    with pytest.raises(WorkerError, match=CommTimeout.__name__) as info:
        launch(_rank_hangs, 2, timeout=1.0)
    assert "rank 1" in str(info.value) and info.value.rank == 0
    assert time.monotonic() - start < 10


def test_an_exception_is_reported_with_its_rank_and_traceback() -> None:
    with pytest.raises(WorkerError, match="KeyError: 'boom'") as info:
        launch(_rank_raises, 4, timeout=30)
    assert info.value.rank == 2 and CommAborted.__name__ not in str(info.value).split("\n")[1]


def _interrupt(cmd: list[str], marker: str) -> tuple[subprocess.Popen, str]:
    """Start ``cmd`` in its own session, wait for ``marker`` on stdout, then press Ctrl-C."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)
    seen = ""
    deadline = time.monotonic() + 60
    while len(re.findall(marker + r" \d+\n", seen)) < 2 and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = proc.communicate(timeout=30)
    return proc, seen + out + err


SLEEPER = textwrap.dedent("""
    import os, time
    import numpy as np
    from mlsys.comm import init_process_group
    group = init_process_group()
    total = group.all_reduce(np.full(3, group.rank + 1.0))
    assert group.world_size == 2 and (total == 3).all()
    os.write(1, f"ready {os.getpid()}\\n".encode())  # one atomic write
    time.sleep(60)
""")


def test_mlsys_run_forms_a_group_and_ctrl_c_cleans_up(tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    before = segments()
    proc, output = _interrupt([sys.executable, "-m", "mlsys.cli", "run", "-n", "2",
                               str(script)], "ready")
    assert proc.returncode != 0
    pids = [int(pid) for pid in re.findall(r"ready (\d+)", output)]
    assert len(pids) == 2 and not any(alive(p) for p in pids)
    assert segments() == before


LAUNCHER = textwrap.dedent("""
    import os, time
    from mlsys.comm import launch

    def sleep(group):
        group.barrier()
        os.write(1, f"ready {os.getpid()}\\n".encode())  # one atomic write
        time.sleep(60)

    launch(sleep, 2)
""")


def test_ctrl_c_on_launch_cleans_up() -> None:
    before = segments()
    proc, output = _interrupt([sys.executable, "-c", LAUNCHER], "ready")
    assert proc.returncode != 0 and "KeyboardInterrupt" in output
    pids = [int(pid) for pid in re.findall(r"ready (\d+)", output)]
    assert len(pids) == 2, output
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)
    assert segments() == before
