"""``mlsys bench kernels`` runs and reports rates, baselines and roofline bounds."""

from __future__ import annotations

import json

import pytest

from mlsys.kernels import bench


def test_bench_json_has_every_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--n", "64", "--repeat", "1", "--bandwidth-mb", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    kernels = [r["kernel"] for r in report["rows"]]
    assert [k for k in kernels if k.startswith("matmul/")] == [
        "matmul/naive", "matmul/reordered", "matmul/tiled", "matmul/parallel", "matmul/packed"]
    assert {"sum rows", "softmax rows", "layer norm", "add (ufunc)", "conv2d direct"} <= set(kernels)
    for row in report["rows"]:
        assert row["rate"] > 0 and row["baseline_rate"] > 0 and row["roofline"] > 0
        assert row["unit"] in ("GFLOP/s", "GB/s")
    assert any("roofline of this machine" in note for note in report["notes"])


def test_bench_rejects_tiny_sizes() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--n", "2"])
    with pytest.raises(SystemExit):
        bench.main(["--bandwidth-mb", "0"])
