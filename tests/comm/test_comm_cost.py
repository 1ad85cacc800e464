"""The alpha-beta-gamma model, its fit, the schedule drawing, and the two measuring commands."""

from __future__ import annotations

import json

import matplotlib
import matplotlib.text
import pytest

from mlsys.comm import ALGORITHMS, bench, calibrate
from mlsys.comm.cost import CostModel, Terms, fit, terms
from mlsys.comm.draw import draw_schedule

matplotlib.use("Agg")


@pytest.mark.parametrize("p", [2, 4, 8])
def test_terms_match_the_textbook_formulas(p: int) -> None:
    n = 4 * 64 * p  # bytes, divisible by p
    ring = terms(ALGORITHMS["ring"](p, n // 4), 4)
    assert ring == Terms(2 * (p - 1), 2 * (p - 1) * n / p, (p - 1) * n / p)
    rd = terms(ALGORITHMS["recursive_doubling"](p, n // 4), 4)
    log = p.bit_length() - 1
    assert rd == Terms(log, log * n, log * n)
    hd = terms(ALGORITHMS["halving_doubling"](p, n // 4), 4)
    assert hd == Terms(2 * log, 2 * (p - 1) * n / p, (p - 1) * n / p)


def test_fit_recovers_a_known_model() -> None:
    truth = CostModel(alpha=5e-6, beta=1 / 8e9, gamma=1 / 3e9)
    samples = [(terms(ALGORITHMS[a](p, n), 4), None) for a in ("ring", "recursive_doubling")
               for p in (2, 4, 8) for n in (1 << 8, 1 << 14, 1 << 20)]
    samples = [(t, truth.predict(t)) for t, _ in samples]
    got = fit(samples)
    for name in ("alpha", "beta", "gamma"):
        assert getattr(got, name) == pytest.approx(getattr(truth, name), rel=1e-6)
    assert "alpha = 5.00 us" in got.describe()
    with pytest.raises(ValueError, match="at least 3 measurements"):
        fit(samples[:2])


def test_draw_schedule_draws_one_arrow_per_message() -> None:
    schedule = ALGORITHMS["ring"](4, 64)
    ax = draw_schedule(schedule)
    arrows = [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation)]
    assert len(arrows) == len(schedule.messages()) == 2 * 4 * 3
    assert "ring all_reduce, p=4" in ax.get_title()


def test_bench_and_calibrate_commands(capsys: pytest.CaptureFixture) -> None:
    assert bench.main(["--ranks", "2", "--sizes", "4096,65536", "--algorithms",
                       "auto,ring", "--rounds", "1", "--no-baselines", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {(r["impl"], r["bytes"]) for r in rows} == {
        (f"mlsys {a}", s) for a in ("auto", "ring") for s in (4096, 65536)}
    assert all(r["busbw_GBs"] == pytest.approx(r["algbw_GBs"]) for r in rows)  # p=2: factor 1
    assert bench.main(["--ddp", "--ranks", "2", "--hidden", "32", "--depth", "1", "--batch",
                       "16", "--steps", "1", "--bucket-mb", "0.002", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["buckets"] > 1 and row["ideal_ms"] == max(row["compute_ms"], row["comm_ms"])
    assert row["overlap_speedup"] == pytest.approx(row["no_overlap_ms"] / row["overlap_ms"])
    assert calibrate.main(["-n", "2", "--sizes", "4096,65536,262144", "--algorithms",
                           "ring,recursive_doubling", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["model"]) == {"alpha", "beta", "gamma"}
    assert len(report["rows"]) == 6 and "fitted: alpha =" in report["notes"][0]
    for row in report["rows"]:
        assert row["predicted_us"] == pytest.approx(row["ratio"] * row["measured_us"])


def test_verdicts_compare_auto_with_mpich() -> None:
    rows = [{"ranks": 2, "impl": "mlsys auto", "bytes": 4096, "vs_mpich": 0.4},
            {"ranks": 2, "impl": "mlsys auto", "bytes": 16 << 20, "vs_mpich": 1.3},
            {"ranks": 2, "impl": "mlsys auto", "bytes": 64 << 20, "vs_mpich": 0.9},
            {"ranks": 2, "impl": "mlsys ring", "bytes": 4096, "vs_mpich": 0.01}]
    assert bench.verdicts(rows) == [
        "target p=2: 4 KiB latency <= 2x MPICH's: 2.50x, NOT met",
        "target p=2: 16-64 MiB bus bandwidth >= MPICH's: 0.90x at worst, NOT met"]
    rows[0]["vs_mpich"], rows[2]["vs_mpich"] = 0.6, 1.1
    assert [v.rsplit(", ", 1)[1] for v in bench.verdicts(rows)] == ["met", "met"]


def test_commands_reject_bad_arguments(capsys: pytest.CaptureFixture) -> None:
    for main, argv, message in [
            (bench.main, ["--sizes", "10"], "expected a multiple of 4"),
            (bench.main, ["--algorithms", "rng"], "item 'rng' of 'rng': expected one of auto,"),
            (bench.main, ["--ranks", "1"], "argument --ranks: item '1' of '1': expected an integer "
                                           "in [2, 256]"),
            (calibrate.main, ["-n", "1"], "argument -n/--ranks: expected an integer in [2, 256], "
                                          "got '1'"),
            (calibrate.main, ["--sizes", "4096", "--algorithms", "ring"],
             "needs at least 2 sizes and 3 measurements")]:
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err
