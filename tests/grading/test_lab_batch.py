"""Batch plumbing: finding submissions, and a worker that fails costs one submission only."""

from __future__ import annotations

from pathlib import Path

from mlsys.grading import batch, bench, labs, notebook, runner


def test_find_submissions_reads_both_layouts_and_skips_checkpoints(tmp_path: Path) -> None:
    for rel in ["ann.ipynb", "bob/autodiff/autodiff.ipynb", "cy/a.ipynb", "cy/b.ipynb",
                "bob/.ipynb_checkpoints/autodiff-checkpoint.ipynb"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = [(student, path.relative_to(tmp_path).as_posix())
             for student, path in batch.find_submissions(tmp_path)]
    assert found == [("ann", "ann.ipynb"), ("bob", "bob/autodiff/autodiff.ipynb"),
                     ("cy/a", "cy/a.ipynb"), ("cy/b", "cy/b.ipynb")]


def test_a_failing_worker_scores_zero_with_the_reason(autodiff, tmp_path: Path) -> None:
    broken = labs.Lab("autodiff", tmp_path / "gone", autodiff.source)  # the worker cannot load it
    limits = runner.Limits(cell_timeout=5, timeout=20)
    report = batch.grade_one(broken, "ann", tmp_path / "ann.ipynb", limits)
    assert report.score == 0 and report.max_score == autodiff.points
    assert "grading worker failed (exit code 1)" in report.notes[0]


def test_bench_folders_mix_full_partial_and_empty_work(autodiff, tmp_path: Path) -> None:
    subs = bench.make_submissions(autodiff, 4, tmp_path)
    assert [s for s, _ in subs] == [f"student00{i}" for i in range(4)]
    stubs = [sum("raise NotImplementedError()" in c.source for c in notebook.read(p).cells
                 if c.cell_type == "code") for _, p in subs]
    assert stubs == [0, 3, 1, 2]  # 3 solution cells: reference, student version, then partial
    assert bench.main(["--n", "0"]) == 2
