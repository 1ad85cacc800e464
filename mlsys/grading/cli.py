"""``mlsys lab``: list, get and check labs (learners); release and grade them (instructors)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import batch, labs, notebook, runner
from .gradebook import write_gradebook


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlsys lab", description=__doc__)
    p.add_argument("--source", type=Path, default=None,
                   help="folder of lab sources (default: the labs shipped with mlsys)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="the labs, with their chapter and points")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("get", help="write a lab's student version")
    s.add_argument("name")
    s.add_argument("dir", nargs="?", type=Path, default=Path("."))
    s.add_argument("--force", action="store_true", help="overwrite an existing notebook")
    s = sub.add_parser("check", help="run a notebook and its visible tests; print the score")
    s.add_argument("notebook", type=Path)
    _limits(s)
    s = sub.add_parser("release", help="student versions of every lab (instructors)")
    s.add_argument("--out", type=Path, default=Path("release"))
    s.add_argument("--force", action="store_true")
    s = sub.add_parser("grade", help="grade a folder of submissions into a gradebook")
    s.add_argument("submissions", type=Path)
    s.add_argument("--out", type=Path, default=Path("gradebook"))
    s.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="submissions graded at once (default: %(default)s)")
    s.add_argument("--no-progress", action="store_true")
    _limits(s)
    return p


def _limits(s: argparse.ArgumentParser) -> None:
    s.add_argument("--lab", help="grade as this lab (default: the lab named in each notebook)")
    s.add_argument("--cell-timeout", type=float, help="seconds per cell (default: the lab's)")
    s.add_argument("--timeout", type=float, help="seconds per submission (default: the lab's)")
    s.add_argument("--memory", type=int, help=f"MiB per kernel (default: "
                                              f"{runner.DEFAULT_MEMORY_MB})")


def _limits_for(lab: labs.Lab, args: argparse.Namespace) -> runner.Limits:
    return runner.Limits.for_lab(lab, args.cell_timeout, args.timeout, args.memory)


def _list(args: argparse.Namespace) -> int:
    rows = [{"lab": lab.name, "chapter": lab.chapter, "points": lab.points,
             "tests": len(lab.tests), "title": lab.title}
            for lab in labs.available(args.source).values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from mlsys.bench.report import format_table

    print(format_table(rows, ["lab", "chapter", "points", "tests", "title"]))
    return 0


def _check(args: argparse.Namespace) -> int:
    name = args.lab or notebook.read(args.notebook).metadata.get("mlsys", {}).get("lab")
    if not isinstance(name, str):
        raise ValueError(f"{args.notebook} does not say which lab it is; pass --lab NAME")
    lab = labs.get(name, args.source)
    report = runner.run_path(lab, args.notebook, args.notebook.stem, _limits_for(lab, args),
                             hidden=False)
    for t in report.tests:
        status = "ok  " if t.passed else "FAIL"
        print(f"{status} {t.grade_id:<28} {t.points:g}/{t.max_points:g}"
              + (f"  {t.message}" if t.message else ""))
    for note in report.notes:
        print(f"note: {note}")
    hidden = sum(t.has_hidden for t in lab.tests)
    print(f"score on visible tests: {report.score:g}/{report.max_score:g}"
          + (f" ({hidden} tests have hidden parts, run when graded)" if hidden else ""))
    return 0 if report.score == report.max_score else 1


def _grade(args: argparse.Namespace) -> int:
    available = labs.available(args.source)
    if args.lab is not None and args.lab not in available:
        raise KeyError(f"unknown lab {args.lab!r}; available labs: {', '.join(available)}")
    subs = batch.find_submissions(args.submissions)
    if not subs:
        raise FileNotFoundError(f"no .ipynb files under {args.submissions}")
    groups: dict[str, list] = {}
    reports = []
    for lab, student, path in batch.by_lab(subs, available, args.lab):
        if lab is None:
            reports.append(runner.Report(student, "unknown", notes=[
                f"{path}: cannot tell which lab this is (unreadable, or no metadata.mlsys.lab); "
                f"grade it with --lab NAME"]))
        else:
            groups.setdefault(lab.name, []).append((student, path))
    for name, items in groups.items():
        lab = available[name]
        reports += batch.grade_all(lab, items, _limits_for(lab, args), jobs=args.jobs,
                                   progress=not args.no_progress)
    paths = write_gradebook(reports, args.out)
    total = sum(r.score for r in reports)
    print(f"graded {len(reports)} submissions ({total:g} points in all): {paths['csv']}, "
          f"{paths['json']}, {paths['feedback']}/")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``mlsys lab``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list(args)
        if args.command == "get":
            path = labs.get(args.name, args.source).write_student_version(args.dir,
                                                                          force=args.force)
            print(f"wrote {path}; fill it in, then: mlsys lab check {path}")
            return 0
        if args.command == "check":
            return _check(args)
        if args.command == "release":
            for lab in labs.available(args.source).values():
                print(f"wrote {lab.write_student_version(args.out / lab.name, force=args.force)}")
            return 0
        return _grade(args)
    except (KeyError, ValueError, OSError, notebook.LabFormatError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mlsys lab {args.command}: {message}", file=sys.stderr)
        return 2
