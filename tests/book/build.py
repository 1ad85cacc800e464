"""Build the book once, executing every chapter, and collect what Sphinx warned about.

Run as a script (``python tests/book/build.py BOOK_ROOT``), this builds the book the way ``make book``
does (Jupyter Book's own Sphinx entry point, ``jupyter-book.yml`` and ``_toc.yml``, warnings as
errors, keep going) with two differences a test needs: every notebook is executed afresh
(``nb_execution_mode = "force"``, so a cache of an older run of the code can never pass for this
one) and every page is read and written anew. Sphinx's warnings, and nothing else, go to
``_build/book-warnings.log``; its progress and the kernels' own chatter go to stdout.

Imported, :func:`build_book` runs that script in a fresh process with a time limit, ends the whole
process tree (kernels included) if the limit passes, and returns the parsed warnings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Sphinx writes each warning as "path:line: LEVEL: message", "path: LEVEL: message" or "LEVEL: message";
# a message may run over several lines (an executed cell's traceback does).
WARNING_START = re.compile(
    r"^(?:(?P<path>[^\s:][^\s]*?)(?::(?P<line>\d+))?: )?(?P<level>WARNING|ERROR|CRITICAL): ", re.MULTILINE)
NOTEBOOK_LINES_PER_CELL = 10_000  # myst-nb reports a notebook location as cell * 10000 + line in cell
# The kernels read chapters/matplotlibrc; an inherited MPLBACKEND (the test suite sets Agg) would keep
# ipykernel from choosing its inline backend, and the book would show no figure at all. The book runs
# with as many BLAS threads as `make book` gives it.
REMOVED_FROM_ENVIRONMENT = ("MPLBACKEND", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class BuildWarning:
    """One warning or error from the build, with the file it concerns when Sphinx names one."""

    level: str
    message: str
    path: Path | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        if self.path is None:
            return "the book"
        if self.line is None:
            return self.path.name
        if self.path.suffix == ".ipynb":
            cell, line = divmod(self.line, NOTEBOOK_LINES_PER_CELL)
            return f"{self.path.name}, cell {cell} (counting from 1), line {line}"
        return f"{self.path.name}, line {self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.level}: {self.message}"


@dataclass(frozen=True)
class BookBuild:
    """The outcome of one build: Sphinx's exit status, its warnings and where its output lies."""

    returncode: int
    warnings: tuple[BuildWarning, ...]
    html: Path
    log: Path
    seconds: float

    def warnings_about(self, source: Path) -> list[BuildWarning]:
        return [w for w in self.warnings if w.path is not None and w.path.resolve() == source.resolve()]


def parse_warnings(text: str) -> list[BuildWarning]:
    """The warnings in Sphinx's warning stream, one per record, colour codes removed."""
    text = ANSI.sub("", text)
    starts = list(WARNING_START.finditer(text))
    records = []
    for match, end in zip(starts, [m.start() for m in starts[1:]] + [len(text)]):
        path, line = match["path"], match["line"]
        records.append(BuildWarning(level=match["level"], message=text[match.end():end].strip(),
                                    path=Path(path) if path else None, line=int(line) if line else None))
    return records


def build_book(root: Path, *, timeout: float, cell_timeout: float) -> BookBuild:
    """Build the book under ``root`` into ``root/_build/html`` in a fresh process; see the module doc."""
    build_dir = root / "_build"
    build_dir.mkdir(exist_ok=True)
    log, warnings_log = build_dir / "book-build.log", build_dir / "book-warnings.log"
    env = {k: v for k, v in os.environ.items() if k not in REMOVED_FROM_ENVIRONMENT}
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, __file__, str(root), str(cell_timeout)], cwd=root,
                                   env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            _end_process_tree(process.pid)
            progress = [line for line in ANSI.sub("", log.read_text()).splitlines() if "sources..." in line]
            last = progress[-1].strip() if progress else "starting"
            raise TimeoutError(f"the book build did not finish in {timeout:.0f} s; it was last {last} "
                               f"(full log: {log})") from expired
        finally:
            _end_process_tree(process.pid)
    warnings = parse_warnings(warnings_log.read_text()) if warnings_log.exists() else []
    return BookBuild(returncode, tuple(warnings), build_dir / "html", log, time.perf_counter() - start)


def _end_process_tree(pid: int) -> None:
    """Kill ``pid`` and every process below it (notebook kernels start their own sessions)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        family = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def _main(root: Path, cell_timeout: float) -> int:
    from jupyter_book.sphinx import build_sphinx
    from sphinx.util.console import nocolor

    nocolor()
    build = root / "_build"
    with open(build / "book-warnings.log", "w") as warnings:
        sys.stderr = warnings  # read once by Sphinx as its warning stream; kernels keep the real stderr
        try:
            result = build_sphinx(root, build / "html", path_config=root / "jupyter-book.yml",
                                  confoverrides={"external_toc_path": str(root / "_toc.yml"),
                                                 "latex_individualpages": False,
                                                 "nb_execution_mode": "force",
                                                 "nb_execution_timeout": int(cell_timeout)},
                                  noconfig=True, freshenv=True, force_all=True, warningiserror=True,
                                  keep_going=True)
        finally:
            sys.stderr = sys.__stderr__
    return result if isinstance(result, int) else 1


if __name__ == "__main__":
    sys.exit(_main(Path(sys.argv[1]).resolve(), float(sys.argv[2])))
