"""``mlsys bench grading``: submissions graded per minute, side by side with nbgrader.

Builds a folder of ``--n`` submissions of a lab (the reference, the student version and partly
solved ones, in turn) and grades the same folder three ways in one run: ``mlsys lab grade`` with
one worker, with ``--jobs`` workers (each submission's kernel in its own sandbox, its tests in the
grader), and nbgrader's ``autograde`` (one submission after another, tests inside the learner's
kernel, as nbgrader does), when nbgrader is installed. Every way starts one kernel per
submission; the ratio column is throughput relative to nbgrader (or to one worker without it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlsys import cliargs
from mlsys.bench.report import emit

from . import batch, labs, notebook, runner, sandbox


def make_submissions(lab: labs.Lab, n: int, folder: Path) -> list[tuple[str, Path]]:
    """Write ``n`` submissions into ``folder/<student>/<lab>/<lab>.ipynb`` (nbgrader's layout):
    submission ``i`` is the reference when ``i % 4 == 0``, the student version when ``i % 4 ==
    1``, and otherwise has the reference in solution cell ``j`` when ``(i + j)`` is even."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    solutions = [k for k, c in enumerate(lab.source.cells)
                 if notebook.nbgrader_meta(c).get("solution")]
    out = []
    for i in range(n):
        nb = lab.student_notebook()
        for j, k in enumerate(solutions):
            if i % 4 == 0 or (i % 4 > 1 and (i + j) % 2 == 0):
                nb.cells[k].source = lab.source.cells[k].source
        student = f"student{i:03d}"
        out.append((student, notebook.write(nb, _place(folder, student, lab))))
    return out


def _place(folder: Path, student: str, lab: labs.Lab) -> Path:
    path = folder / student / lab.name / f"{lab.name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _ours(lab: labs.Lab, subs: list[tuple[str, Path]], jobs: int,
          kind: str) -> tuple[float, float]:
    limits = runner.Limits.for_lab(lab, sandbox_kind=kind)
    start = time.perf_counter()
    reports = batch.grade_all(lab, subs, limits, jobs=jobs, progress=False)
    return time.perf_counter() - start, sum(r.score for r in reports)


@contextlib.contextmanager
def _stderr_kept(path: Path) -> Iterator[Path]:
    """Send this process's standard error (and its children's: nbgrader's kernels print a line
    each as they start) to ``path`` for the duration, so the table is not buried; failures quote it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _nbgrader(lab: labs.Lab, course: Path, students: list[str]) -> tuple[float, float] | None:
    """Seconds and total score of nbgrader's generate_assignment + autograde, or None."""
    try:
        import nbgrader.api
        from alembic.script import ScriptDirectory
        from nbgrader.apps import NbGraderAPI
        from nbgrader.dbutil import ALEMBIC_DIR
        from traitlets.config import Config
    except ImportError:
        return None
    head = ScriptDirectory(ALEMBIC_DIR).get_current_head()
    nbgrader.api.get_alembic_version = lambda: head  # nbgrader would start `alembic` to ask
    warnings.filterwarnings("ignore", module="nbgrader")  # its gradebook's SQLAlchemy chatter
    (course / "source" / lab.name).mkdir(parents=True)
    shutil.copy(lab.folder / f"{lab.name}.ipynb", course / "source" / lab.name)
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    api = NbGraderAPI(config=config)
    with _stderr_kept(course / "nbgrader-stderr.log") as log:
        start = time.perf_counter()
        if not api.generate_assignment(lab.name)["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed on lab {lab.name!r}; its "
                               f"output: {log.read_text()[-2000:]}")
        for student in students:
            if not api.autograde(lab.name, student)["success"]:
                raise RuntimeError(f"nbgrader autograde failed for {student}; its output: "
                                   f"{log.read_text()[-2000:]}")
        seconds = time.perf_counter() - start
    with nbgrader.api.Gradebook(config.CourseDirectory.db_url) as gradebook:
        total = sum(gradebook.find_submission_notebook(lab.name, lab.name, s).score
                    for s in students)
    return seconds, float(total)


def run(lab_name: str = "autodiff", n: int = 50, jobs: int | None = None,
        with_nbgrader: bool = True, sandbox_kind: str = "auto") -> list[dict[str, Any]]:
    """Grade ``n`` generated submissions each way; one row per way."""
    lab = labs.get(lab_name)
    jobs = jobs or min(4, os.cpu_count() or 1)
    kind = sandbox.choose(sandbox_kind)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlsys-bench-grading-") as tmp:
        course = Path(tmp) / "course"
        subs = make_submissions(lab, n, course / "submitted")
        batch.warm_up()
        for workers in (1, jobs):
            seconds, total = _ours(lab, subs, workers, kind)
            label = f"mlsys lab grade --jobs {workers} --sandbox {kind}"
            rows.append({"grader": label, "submissions": n, "seconds": seconds, "points": total})
        theirs = _nbgrader(lab, course, [s for s, _ in subs]) if with_nbgrader else None
        if theirs is not None:
            rows.append({"grader": "nbgrader autograde", "submissions": n, "seconds": theirs[0],
                         "points": theirs[1]})
    base = rows[-1]["seconds"]
    for row in rows:
        row["per_minute"] = 60.0 * n / row["seconds"]
        row["vs_baseline"] = base / row["seconds"]
    return rows


def main(argv: list[str]) -> int:
    """Entry point of ``mlsys bench grading``."""
    p = cliargs.ArgumentParser(prog="mlsys bench grading", description=__doc__)
    p.add_argument("--lab", default="autodiff", help="the lab to grade (default: autodiff)")
    p.add_argument("--n", type=cliargs.int_range(1, 10_000), default=50,
                   help="submissions in the folder (default: 50)")
    p.add_argument("--jobs", type=cliargs.int_range(1, 256), default=None,
                   help="workers for the parallel row (default: up to 4, one per core)")
    p.add_argument("--sandbox", default="auto", choices=("auto", *sandbox.KINDS),
                   help="kernel isolation for mlsys's rows (default: the best available)")
    p.add_argument("--no-nbgrader", action="store_true", help="skip the nbgrader baseline")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    try:
        rows = run(args.lab, args.n, args.jobs, not args.no_nbgrader, args.sandbox)
    except (KeyError, ValueError, RuntimeError) as error:
        return cliargs.fail("mlsys bench grading", str(error.args[0] if error.args else error))
    baseline = rows[-1]["grader"]
    print(emit(rows, as_json=args.json, title=f"grading throughput, lab {args.lab!r}",
               columns=["grader", "submissions", "seconds", "per_minute", "vs_baseline",
                        "points"],
               notes=[f"vs_baseline: throughput relative to {baseline}; every grader starts one "
                      f"kernel per submission; points must agree across rows"]))
    return 0
