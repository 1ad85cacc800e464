"""``mlsys serve`` and ``mlsys bench serve``: options are checked before any work starts."""

from __future__ import annotations

import pytest

from mlsys.serve import bench, cli


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "--port: expected an integer in [0, 65535], got '70000'"),
    (["--replicas", "0"], "--replicas: expected a positive integer, got '0'"),
    (["--max-wait-ms", "nan"], "--max-wait-ms: expected a finite number >= 0, got 'nan'"),
    (["--model", "resnet"], "invalid choice: 'resnet'"),
    (["--checkpoint", "/nonexistent/folder/w.npz"], "folder '/nonexistent/folder' does not exist"),
    (["--checkpoint", "weights.pt"], "expected a .npz file"),
])
def test_serve_refuses_bad_options_in_one_line(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--duration", "-1"], ["--max-wait-ms", "1,1"],
                                  ["--rate", "0"], ["--part", "gpu"]])
def test_bench_serve_refuses_bad_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2 and "mlsys bench serve: error:" in capsys.readouterr().err


def test_int8_rows_compare_the_same_shapes_as_blas() -> None:
    (row,) = bench.int8_rows(((8, 16, 8),), rounds=1)
    assert row["shape"] == "(8x16) @ (16x8)" and row["weight_bytes_ratio"] == 0.25
    assert row["int8_gops"] > 0 and row["fp32_blas_gflops"] > 0
