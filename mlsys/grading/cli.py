"""``mlsys lab``: list, get and check labs (learners); release and grade them (instructors).

Learners: ``mlsys lab list``, ``mlsys lab get NAME``, ``mlsys lab check NOTEBOOK``. Instructors:
``mlsys lab release [NAME ...] --secret S`` (student versions for a class whose hidden tests come
from the secret S) and ``mlsys lab grade SUBMISSIONS --secret S`` (every notebook in its own
sandboxed kernel; the gradebook is saved after each one, ``--resume`` continues a stopped run).
``--source DIR`` (before or after the command) uses a folder of your own labs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlsys import cliargs

SECRET_ENV = "MLSYS_LAB_SECRET"  # the same name as mlsys.grading.checks.SECRET_ENV (lazy import)
SANDBOXES = ("auto", "bwrap", "unshare", "none")


def _parser() -> argparse.ArgumentParser:
    source = cliargs.ArgumentParser(add_help=False)
    source.add_argument("--source", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                        help="folder of lab sources laid out like labs/ (default: the labs "
                             "shipped with mlsys)")
    p = cliargs.ArgumentParser(prog="mlsys lab", description=__doc__, parents=[source],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=cliargs.ArgumentParser)

    s = sub.add_parser("list", parents=[source], help="the labs: chapter, points, estimated time")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")

    s = sub.add_parser("get", parents=[source], help="write a lab's student version")
    s.add_argument("name", help="the lab (see mlsys lab list)")
    s.add_argument("dir", nargs="?", type=Path, default=Path("."),
                   help="folder to write it into (default: the current folder)")
    s.add_argument("--force", action="store_true", help="overwrite an existing notebook")

    s = sub.add_parser("check", parents=[source],
                       help="run a notebook and its visible tests; print each test and the score")
    s.add_argument("notebook", type=Path, help="the lab notebook to check")
    s.add_argument("--sandbox", choices=SANDBOXES, default="none",
                   help="where the notebook runs (default: none, a plain process: it is yours)")
    _limits(s)

    s = sub.add_parser("release", parents=[source],
                       help="student versions of the labs, for a class (instructors)")
    s.add_argument("names", nargs="*", metavar="NAME", help="labs to release (default: all)")
    s.add_argument("--out", type=_out_folder, default=Path("release"),
                   help="folder for the student versions (default: release/)")
    s.add_argument("--force", action="store_true", help="overwrite notebooks already there")
    _secret(s)
    s.add_argument("--no-verify", action="store_true",
                   help="with --secret, skip grading the reference solution on the class's "
                        "hidden tests")
    s.add_argument("--sandbox", choices=SANDBOXES, default="auto",
                   help="sandbox for verifying the reference (default: the best available)")

    s = sub.add_parser("grade", parents=[source],
                       help="grade a folder of submissions into a gradebook (instructors)")
    s.add_argument("submissions", type=Path,
                   help="folder of <student>.ipynb or <student>/.../<lab>.ipynb")
    s.add_argument("--out", type=_out_folder, default=Path("gradebook"),
                   help="gradebook folder (default: gradebook/)")
    s.add_argument("--jobs", type=cliargs.int_range(1, 256), default=min(2, os.cpu_count() or 1),
                   help="submissions graded at once (default: %(default)s)")
    s.add_argument("--resume", action="store_true",
                   help="keep the reports of an earlier run in --out and grade only the rest "
                        "(and submissions that changed since)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _secret(s)
    s.add_argument("--sandbox", choices=SANDBOXES, default="auto",
                   help="kernel isolation: bwrap (bubblewrap), unshare (namespaces without "
                        "bubblewrap), none (no isolation: trusted notebooks only); default: the "
                        "best available")
    _limits(s)
    return p


def _out_folder(text: str) -> Path:
    """A folder to write into: it may not exist yet, but it may not be a file."""
    path = Path(text)
    if not text or (path.exists() and not path.is_dir()):
        raise argparse.ArgumentTypeError(f"expected a folder, got {text!r}")
    return path


def _secret(s: argparse.ArgumentParser) -> None:
    s.add_argument("--secret", default=None,
                   help=f"the class's secret: hidden tests draw their inputs from it (default: "
                        f"${SECRET_ENV}; without one, the public default cases)")


def _limits(s: argparse.ArgumentParser) -> None:
    s.add_argument("--lab", help="grade as this lab (default: the lab named in each notebook)")
    s.add_argument("--cell-timeout", type=cliargs.positive_float,
                   help="seconds per cell and per call into the notebook (default: the lab's)")
    s.add_argument("--timeout", type=cliargs.positive_float,
                   help="seconds per submission (default: the lab's)")
    s.add_argument("--memory", type=cliargs.int_range(256),
                   help="MiB of address space per kernel (default: 4096)")


def _limits_for(lab: Any, args: argparse.Namespace) -> Any:
    from .runner import Limits

    return Limits.for_lab(lab, args.cell_timeout, args.timeout, args.memory,
                          getattr(args, "sandbox", "auto"))


def _list(args: argparse.Namespace) -> int:
    from . import labs

    rows = [{"lab": lab.name, "chapter": lab.chapter, "points": lab.points,
             "minutes": lab.minutes, "tests": len(lab.tests), "title": lab.title}
            for lab in labs.available(args.source).values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    names = ["lab", "chapter", "points", "minutes", "tests", "title"]
    width = {k: max(len(k), *(len(f"{r[k]:g}" if isinstance(r[k], float) else str(r[k]))
                              for r in rows)) for k in names}
    print("  ".join(k.ljust(width[k]) for k in names))
    for r in rows:
        print("  ".join((f"{r[k]:g}" if isinstance(r[k], float) else str(r[k])).ljust(width[k])
                        for k in names))
    return 0


def _get(args: argparse.Namespace) -> int:
    from . import labs

    path = labs.get(args.name, args.source).write_student_version(args.dir, force=args.force)
    print(f"wrote {path}; fill it in, then: mlsys lab check {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from . import labs, notebook, runner

    name = args.lab or notebook.mlsys_meta(notebook.read(args.notebook)).get("lab")
    if not isinstance(name, str):
        raise ValueError(f"{args.notebook} does not say which lab it is; pass --lab NAME")
    lab = labs.get(name, args.source)
    report = runner.run_path(lab, args.notebook, args.notebook.stem, _limits_for(lab, args),
                             hidden=False)
    hints = {t.grade_id: t.hints for t in lab.tests}
    for t in report.tests:
        status = "ok  " if t.passed else "FAIL"
        print(f"{status} {t.grade_id:<28} {t.points:g}/{t.max_points:g}"
              + (f"  {t.message}" if t.message else ""))
        if not t.passed and hints.get(t.grade_id):
            print(f"     hint: {hints[t.grade_id][0]} (more: check({t.grade_id!r}) in the "
                  f"notebook)")
    for note in report.notes:
        print(f"note: {note}")
    hidden = sum(t.has_hidden for t in lab.tests)
    print(f"score on visible tests: {report.score:g}/{report.max_score:g}"
          + (f" ({hidden} tests have hidden parts, run when graded)" if hidden else ""))
    return 0 if report.score == report.max_score else 1


def _release(args: argparse.Namespace) -> int:
    from . import checks, labs

    available = labs.available(args.source)
    unknown = [n for n in args.names if n not in available]
    if unknown:
        raise KeyError(f"unknown lab(s) {', '.join(map(repr, unknown))}; available labs: "
                       f"{', '.join(available)}")
    chosen = [available[n] for n in args.names or available]
    secret = _the_secret(args)
    if secret is not None and not args.no_verify:
        _verify(chosen, secret, args.sandbox)
    stamp = checks.secret_id(secret) if secret is not None else None
    for lab in chosen:
        print(f"wrote {lab.write_student_version(args.out / lab.name, force=args.force, secret_id=stamp)}")
    return 0


def _verify(chosen: list, secret: str, kind: str) -> None:
    """Grade each lab's reference solution with the class's hidden tests: a secret whose random
    cases the reference fails would fail everyone."""
    from . import notebook, runner

    for lab in chosen:
        reference = notebook.Node(lab.source, cells=[
            notebook.Node(c, source=c.source.replace(notebook.BEGIN_SOLUTION, "").replace(
                notebook.END_SOLUTION, "")) for c in lab.source.cells])
        report = runner.run_submission(lab, reference, "reference",
                                       runner.Limits.for_lab(lab, sandbox_kind=kind),
                                       secret=secret)
        failed = [f"{t.grade_id}: {t.message}" for t in report.tests if not t.passed]
        if failed:
            raise ValueError(f"lab {lab.name}: the reference solution fails this secret's hidden "
                             f"tests ({'; '.join(failed)[:500]}); choose another secret")
        print(f"verified {lab.name}: the reference scores {report.score:g}/{report.max_score:g} "
              f"on this class's hidden tests")


def _the_secret(args: argparse.Namespace) -> str | None:
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV)
    if secret is not None and not secret:
        raise ValueError("the secret must not be empty")
    return secret


def _grade(args: argparse.Namespace) -> int:
    from . import batch, checks, labs, notebook, runner, sandbox
    from .gradebook import Gradebook

    available = labs.available(args.source)
    if args.lab is not None and args.lab not in available:
        raise KeyError(f"unknown lab {args.lab!r}; available labs: {', '.join(available)}")
    secret = _the_secret(args)
    args.sandbox = sandbox.choose(args.sandbox)  # fail before any work if there is none
    subs = batch.find_submissions(args.submissions)
    if not subs:
        raise FileNotFoundError(f"no .ipynb files under {args.submissions}")
    book = Gradebook(args.out)
    done = book.resume() if args.resume else {}
    groups: dict[str, list] = {}
    order = []
    for lab, student, path in batch.by_lab(subs, available, args.lab):
        name = lab.name if lab is not None else "unknown"
        order.append((student, name))
        previous = done.get((student, name))
        if previous is not None and previous.digest == runner.file_digest(path):
            continue
        if lab is None:
            book.add(runner.Report(student, "unknown", notes=[
                f"{path}: cannot tell which lab this is (unreadable, or no metadata.mlsys.lab); "
                f"grade it with --lab NAME"], digest=runner.file_digest(path)))
            continue
        stamp = _secret_id_of(notebook, path)
        if secret is not None and stamp not in (None, checks.secret_id(secret)):
            print(f"warning: {path} was released for another secret", file=sys.stderr)
        groups.setdefault(lab.name, []).append((student, path))
    skipped = len(subs) - sum(len(items) for items in groups.values())
    try:
        for name, items in groups.items():
            lab = available[name]
            batch.grade_all(lab, items, _limits_for(lab, args), jobs=args.jobs, secret=secret,
                            progress=not args.no_progress, on_report=book.add)
    except KeyboardInterrupt:
        print(f"\nmlsys lab grade: interrupted; {len(book.reports)} of {len(subs)} submissions "
              f"are saved in {book.partial}. Run the same command with --resume to finish.",
              file=sys.stderr)
        return 130
    paths = book.finish(order)
    total = sum(r.score for r in book.reports.values())
    print(f"graded {len(book.reports)} submissions ({total:g} points in all"
          + (f"; {skipped} kept from the earlier run" if args.resume and skipped else "")
          + f", sandbox {args.sandbox}): {paths['csv']}, {paths['json']}, {paths['feedback']}/")
    return 0


def _secret_id_of(notebook: Any, path: Path) -> str | None:
    try:
        stamp = notebook.mlsys_meta(notebook.read(path)).get("secret_id")
    except notebook.LabFormatError:
        return None
    return stamp if isinstance(stamp, str) else None


COMMANDS = {"list": _list, "get": _get, "check": _check, "release": _release, "grade": _grade}


def main(argv: list[str]) -> int:
    """Entry point of ``mlsys lab``."""
    args = _parser().parse_args(argv)
    args.source = getattr(args, "source", None)
    from .notebook import LabFormatError

    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\nmlsys lab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (KeyError, ValueError, OSError, LabFormatError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        return cliargs.fail(f"mlsys lab {args.command}", str(message))
