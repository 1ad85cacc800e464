"""``mlsys bench compile`` and ``mlsys bench autodiff`` at tiny sizes: every table's rows and
target lines are printed (the timings themselves are not checked: they depend on the machine)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import numpy as np
import pytest

from mlsys.bench import autodiff
from mlsys.graph import bench

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_NUMEXPR = importlib.util.find_spec("numexpr") is not None


@pytest.fixture(scope="module")
def compile_report() -> list[dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench.main(["--quick", "--json"]) == 0
    return json.loads(out.getvalue())


def _verdicts(notes: list[str]) -> list[str]:
    targets = [n for n in notes if n.startswith("target:")]
    assert targets and all(n.endswith(("met", "NOT met")) for n in targets), targets
    return targets


def test_compile_steps_and_adam(compile_report: list[dict]) -> None:
    steps, adam = compile_report[0], compile_report[1]
    assert steps["notes"][0].startswith("--quick:")
    assert [r["model"] for r in steps["rows"]] == ["mlp", "gelu_mlp", "cnn"]
    for row in steps["rows"]:
        traced, optimized = map(int, row["nodes"].split("->"))
        assert optimized < traced
        assert 0 < row["planned_KB"] < row["naive_KB"]
        assert row["eager_ms"] > 0 and row["compiled_ms"] > 0
    assert len(_verdicts(steps["notes"])) == 2
    names = [r["step"] for r in adam["rows"]]
    assert names == ["mlsys eager", "mlsys.compile"] + (["pytorch eager"] if HAS_TORCH else [])
    assert {r["batch"] for r in adam["rows"]} == {bench.ADAM_BATCH // 4}
    if HAS_TORCH:
        assert f"at batch {bench.ADAM_BATCH // 4}:" in _verdicts(adam["notes"])[0]


def test_compile_chains_fuse_into_one_kernel(compile_report: list[dict]) -> None:
    chains = compile_report[2]
    rows = chains["rows"]
    assert {r["chain"] for r in rows} == set(bench.CHAINS)
    for name in bench.CHAINS:
        for n in bench.thread_counts():
            by = {r["variant"]: r for r in rows if r["chain"] == name and r["threads"] == n}
            expected = {"eager (Tensor ops)", "graph, unfused (numpy per op)", bench.FUSED}
            if HAS_NUMEXPR and "erf" not in name:
                expected.add("numexpr")
            if HAS_TORCH:
                expected.add("pytorch eager")
            assert set(by) == expected, (name, n)
            fused, unfused = by[bench.FUSED], by["graph, unfused (numpy per op)"]
            assert fused["kernels"] == 1 < unfused["kernels"]
            assert fused["MB_moved"] < unfused["MB_moved"]
            assert all(r["ms"] > 0 for r in by.values())
    assert len(_verdicts(chains["notes"])) == (2 if HAS_NUMEXPR else 1)
    assert any("agrees with eager's" in n for n in chains["notes"])


def test_compile_remat(compile_report: list[dict]) -> None:
    rows = compile_report[3]["rows"]
    assert [r["budget"] for r in rows] == ["100% of peak", "90% of peak", "80% of peak",
                                           "70% of peak", "60% of peak"]
    assert rows[0]["extra_flops"] == 0 and rows[0]["time_vs_no_remat"] == 1
    assert all(r["peak_live_KB"] <= rows[0]["peak_live_KB"] for r in rows)
    assert all(r["extra_flops"] >= 0 for r in rows)


def test_a_variant_that_disagrees_with_eager_is_refused() -> None:
    eager = ("eager", lambda: np.arange(4, dtype=np.float32), None)
    close = ("close", lambda: np.arange(4, dtype=np.float32) * np.float32(1 + 1e-6), None)
    bench.check_agreement([eager, close])
    wrong = ("fast but wrong", lambda: np.arange(4, dtype=np.float32) + 1, None)
    with pytest.raises(RuntimeError, match="fast but wrong computed a different result"):
        bench.check_agreement([eager, close, wrong])
    with pytest.raises(RuntimeError, match="different shape"):
        bench.check_agreement([eager, ("short", lambda: np.zeros(3, np.float32), None)])


def test_autodiff_prints_every_implementation(capsys: pytest.CaptureFixture[str]) -> None:
    assert autodiff.main(["--batch", "8", "16", "--repeat", "1"]) == 0
    text = capsys.readouterr().out
    names = ["mlsys (eager)", "numpy by hand"] + (["pytorch (cpu)"] if HAS_TORCH else [])
    lines = text.splitlines()
    for name in names:
        assert sum(line.lstrip().startswith(name) for line in lines) == 2, name
    if HAS_TORCH:
        assert "target: the engine's step <= 1.2x PyTorch's at every batch size" in text
        assert "over hand-written numpy (the same arithmetic): batch 8: mlsys" in text
    else:
        assert "PyTorch is not installed" in text
