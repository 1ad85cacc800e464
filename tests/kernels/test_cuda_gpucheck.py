"""`make gpu-check`'s script: it refuses to pass off the simulator as a GPU, saying what is
missing, and its code paths (every measurement, the table, the JSON) run end to end in the
simulator on tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsys.kernels.cuda import gpucheck, runtime
from mlsys.kernels.cuda.runtime import SIMULATOR

pytestmark = pytest.mark.skipif(not SIMULATOR, reason="a real GPU runs the real check")


@pytest.mark.parametrize("preflight", [False, True])
def test_it_refuses_to_measure_the_simulator_and_says_why(
        preflight: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    argv = ["--preflight"] if preflight else ["--out", "unused.json"]
    assert gpucheck.main(argv) == 2 and not Path("unused.json").exists()
    assert "NUMBA_ENABLE_CUDASIM is set" in capsys.readouterr().err
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM")
    monkeypatch.setattr(runtime, "gpu_present", lambda: False)
    assert gpucheck.main(argv) == 2
    assert "no NVIDIA driver on this machine (no libcuda" in capsys.readouterr().err
    monkeypatch.setattr(runtime, "gpu_present", lambda: True)  # a driver, and still the simulator
    assert gpucheck.main(argv) == 2 and "simulator" in capsys.readouterr().err


def test_the_simulated_check_writes_every_row(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "check.json"
    assert gpucheck.main(["--simulate", "--n", "8", "--rows", "8", "--batch", "4", "--hidden", "4",
                          "--repeat", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report) == {"date", "device", "simulated", "tests", "rows"}
    assert report["simulated"] and report["device"].startswith("Numba CUDA simulator")
    assert report["tests"] == {"ran": False, "why": "--simulate"}  # no tests of the simulator
    assert all(list(r) == gpucheck.COLUMNS for r in report["rows"])
    checks = [r["check"] for r in report["rows"]]
    assert [c.split(" (")[0] for c in checks[:4]] == [f"matmul {s}" for s in gpucheck.STAGES]
    for expected in ("row sum", "row softmax", "MLP step: cuda vs cpu",
                     "MLP step: compiled vs eager cuda", "transfers per step, cuda compiled"):
        assert expected in checks
    transfers = [r for r in report["rows"] if r["unit"] == "copies"]
    assert len(transfers) == 2 and all(r["met"] and r["value"] == 3 for r in transfers)
    assert all(r["met"] is None for r in report["rows"] if r["unit"] != "copies")  # not a GPU
    printed = capsys.readouterr().out
    assert "SIMULATED" in printed and "no cuBLAS baseline" in printed
    assert all(c in printed for c in checks)
