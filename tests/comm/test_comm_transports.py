"""The same collective checks on both transports: shared memory (default) and MPI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from comm_checks import CHECKS, check_collectives

from mlsys.comm import MismatchError, WorkerError, launch
from mlsys.comm.launcher import mpich_segments, mpiexec_path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def have_mpi() -> bool:
    try:
        import mpi4py  # noqa: F401

        return bool(mpiexec_path())
    except (ImportError, FileNotFoundError):
        return False


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
    assert "MismatchError" in result.stderr and "float64 (10,)" in result.stderr
    assert "no progress" not in result.stderr  # the job was aborted, nobody waited for a timeout


@pytest.mark.parametrize("check,shapes", [("shapes", ["float64 (10,)", "float64 (11,)"]),
                                          ("dtypes", ["float64 (8,)", "float32 (8,)"])])
def test_mismatches_name_the_ranks_and_shapes(check: str, shapes: list[str]) -> None:
    with pytest.raises(WorkerError) as info:
        launch(CHECKS[check], 2, timeout=10)
    message = str(info.value)
    assert MismatchError.__name__ in message
    assert all(s in message for s in shapes) and "rank 0" in message and "rank 1" in message


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
    return "ok"


def test_bad_arguments_are_named() -> None:
    assert launch(_p2p_errors, 2, timeout=10) == ["ok", "ok"]
    with pytest.raises(ValueError, match="world_size must be a positive integer, got 0"):
        launch(_p2p_errors, 0)


def test_mlsys_run_rejects_a_missing_script(capsys: pytest.CaptureFixture) -> None:
    from mlsys.comm.launcher import main

    with pytest.raises(SystemExit):
        main(["-n", "2", "no_such_script.py"])
    assert "no_such_script.py" in capsys.readouterr().err
