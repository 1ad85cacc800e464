"""The same collective checks on both transports: shared memory (default) and MPI."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from comm_checks import check_collectives, have_mpi

from mlsys.comm import CommAborted, MismatchError, WorkerError, launch
from mlsys.comm.launcher import mpich_segments

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.mark.parametrize("world_size", [1, 3, 4])
def test_shared_memory_collectives(world_size: int) -> None:
    assert launch(check_collectives, world_size, timeout=30) == ["ok"] * world_size


def run_mpi(checks: list[str], world_size: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlsys.cli", "run", "--backend", "mpi", "--timeout", "20",
           "-n", str(world_size), str(HERE / "mpi_entry.py"), *checks]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.skipif(not have_mpi(), reason="mpi4py and mpiexec are not installed")
def test_mpi_collectives_then_a_reported_mismatch() -> None:
    before = mpich_segments()
    result = run_mpi(["collectives", "shapes"], 3)
    assert mpich_segments() - before == set(), "the aborted job's shared memory was left behind"
    assert sorted(re.findall(r"rank \d+: collectives ok", result.stdout)) == [
        f"rank {r}: collectives ok" for r in range(3)], result.stderr
    assert result.returncode != 0
    assert "MismatchError" in result.stderr and "shape ((10,) vs (11,))" in result.stderr
    assert "no progress" not in result.stderr  # the job was aborted, nobody waited for a timeout


def _call(group, kind: str) -> None:  # noqa: ANN001
    """Rank 0 and the others make different calls: what differs is in ``kind``."""
    r, x = group.rank, np.zeros(1000, np.float32)
    calls = {
        "shape": lambda: group.all_reduce(np.zeros(10 + r)),
        "dtype": lambda: group.all_reduce(np.zeros(8, np.float32 if r else np.float64),
                                          algorithm="ring"),
        "collective": lambda: group.all_reduce(x) if r == 0 else group.broadcast(x),
        "root": lambda: group.broadcast(x, root=r),
        "op": lambda: group.all_reduce(x, op="max" if r else "sum"),
        "algorithm": lambda: group.all_reduce(x, algorithm="ring" if r else "direct"),
    }
    calls[kind]()


@pytest.mark.parametrize("kind,names", [
    ("shape", ["shape ((10,) vs (11,))", "shape ((11,) vs (10,))"]),
    ("dtype", ["dtype (float64 vs float32)", "dtype (float32 vs float64)"]),
    ("collective", ["different collectives (all_reduce vs broadcast)",
                    "different collectives (broadcast vs all_reduce)"]),
    ("root", ["root (0 vs 1)", "root (1 vs 0)"]),
    ("op", ["reduce op (sum vs max)", "reduce op (max vs sum)"]),
    ("algorithm", ["algorithm (direct vs ring)", "algorithm (ring vs direct)"]),
])
def test_mismatched_calls_fail_at_once_naming_what_differs(kind: str, names: list[str]) -> None:
    start = time.monotonic()
    with pytest.raises(WorkerError) as info:
        launch(_call, 2, kind, timeout=20)
    message = str(info.value)
    assert MismatchError.__name__ in message and any(n in message for n in names), message
    assert "rank 0 called" in message or "rank 1 called" in message
    assert time.monotonic() - start < 15  # found at the call, not by a timeout


def _collectives_after_a_caught_mismatch(group) -> str:  # noqa: ANN001
    """The mismatch aborts the group: a later collective raises instead of mixing data."""
    with pytest.raises(MismatchError):
        group.broadcast(np.zeros(4), root=group.rank)
    with pytest.raises(CommAborted):
        group.broadcast(np.zeros(4), root=0)
    return "ok"


def test_a_mismatch_is_never_followed_by_corrupt_collectives() -> None:
    assert launch(_collectives_after_a_caught_mismatch, 2, timeout=20) == ["ok", "ok"]


def _p2p_errors(group) -> str:  # noqa: ANN001
    with pytest.raises(ValueError, match="peer must be another rank in \\[0, 2\\), got 5"):
        group.send(np.zeros(2), 5)
    with pytest.raises(ValueError, match="unknown op 'avg'"):
        group.all_reduce(np.zeros(2), op="avg")
    with pytest.raises(ValueError, match="first dimension 2"):
        group.all_to_all(np.zeros(3))
    with pytest.raises(TypeError, match="op='mean' needs a floating dtype, got int64"):
        group.all_reduce(np.zeros(2, np.int64), op="mean")
    with pytest.raises(TypeError, match="expected a numpy array or Tensor, got list"):
        group.all_reduce([1.0, 2.0])
    with pytest.raises(ValueError, match="root must be a rank in \\[0, 2\\), got 2"):
        group.broadcast(np.zeros(2), root=2)
    for bad in (np.array(["a", "b"]), np.array([object(), None]), np.zeros(2, "M8[s]")):
        with pytest.raises(TypeError, match=re.escape(f"numbers, got dtype {bad.dtype}")):
            group.all_reduce(bad)
        with pytest.raises(TypeError, match="expected an array of numbers"):
            group.broadcast(bad)
    group.barrier()  # nothing above reached the other rank: the group still works
    return "ok"


def test_bad_arguments_are_named() -> None:
    assert launch(_p2p_errors, 2, timeout=10) == ["ok", "ok"]
    with pytest.raises(ValueError, match="world_size must be a positive integer, got 0"):
        launch(_p2p_errors, 0)
    with pytest.raises(ValueError, match="timeout must be a finite positive number of seconds, "
                                         "got nan"):
        launch(_p2p_errors, 1, timeout=float("nan"))


def test_mlsys_run_rejects_a_missing_script(capsys: pytest.CaptureFixture) -> None:
    from mlsys.comm.launcher import main

    with pytest.raises(SystemExit) as stop:
        main(["-n", "2", "no_such_script.py"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "mlsys run: error: argument script: no such file: 'no_such_script.py'"
