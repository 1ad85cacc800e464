"""Grade a folder of submissions: one isolated worker process per submission, a few at a time.

Each worker is forked from a ``multiprocessing`` fork server that has the grader imported already
(so a worker costs milliseconds, not an interpreter start), leads its own process group and
starts its own kernel for the submission. The parent only waits, with a backstop deadline of the
submission's time limit plus a margin, and turns any failure of the worker (killed, crashed, no
report) into a zero with the reason, never into an error of the batch.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from . import runner
from .labs import Lab
from .progress import Progress
from .runner import Limits, Report

BACKSTOP_MARGIN_S = 30.0
_WORKERS = multiprocessing.get_context("forkserver")
_WORKERS.set_forkserver_preload(["mlsys.grading.runner"])
_STARTING = threading.Lock()  # Process.start() from several grading threads at once is not safe


def find_submissions(folder: Path) -> list[tuple[str, Path]]:
    """``(student, notebook)`` pairs: ``folder/<student>.ipynb`` or ``folder/<student>/*.ipynb``.

    A student folder with several notebooks is named ``student/notebook``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"submissions folder {folder} does not exist")
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):  # .ipynb_checkpoints and the like
            continue
        if len(rel.parts) == 1:
            found.append((path.stem, path))
        else:
            siblings = list(path.parent.glob("*.ipynb"))
            student = rel.parts[0] if len(siblings) == 1 else str(rel.with_suffix(""))
            found.append((student, path))
    return found


def warm_up() -> None:
    """Start the fork server now (it imports the grader once), not inside the first grading."""
    multiprocessing.forkserver.ensure_running()


def _work(channel: Any, lab_folder: str, path: str, student: str, limits: Limits,
          hidden: bool) -> None:
    """The worker: grade one notebook and send the report's JSON back through ``channel``."""
    os.setsid()  # its own process group, so the backstop can kill everything it started
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    lab = Lab.load(Path(lab_folder))
    channel.send(runner.run_path(lab, Path(path), student, limits, hidden=hidden).to_json())
    channel.close()


def grade_one(lab: Lab, student: str, path: Path, limits: Limits, *, hidden: bool = True) -> Report:
    """Grade one notebook in an isolated worker process; always returns a report."""
    backstop = limits.timeout + BACKSTOP_MARGIN_S
    receive, send = _WORKERS.Pipe(duplex=False)
    worker = _WORKERS.Process(target=_work, args=(send, str(lab.folder), str(path), student,
                                                  limits, hidden), daemon=True)
    with _STARTING:
        worker.start()
    send.close()
    try:
        if not receive.poll(backstop):
            _kill(worker)
            return Report.failed(lab, student, f"grading did not finish within {backstop:g} s")
        return Report.from_json(receive.recv())
    except (EOFError, OSError, ValueError, KeyError, TypeError):
        worker.join(5)
        return Report.failed(lab, student, f"the grading worker failed (exit code "
                                           f"{worker.exitcode})")
    finally:
        receive.close()
        worker.join(5)
        if worker.is_alive():
            _kill(worker)


def _kill(worker: Any) -> None:
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.join()


def grade_all(lab: Lab, submissions: list[tuple[str, Path]], limits: Limits, *, jobs: int = 2,
              hidden: bool = True, progress: bool = True,
              grade: Callable[..., Report] = grade_one) -> list[Report]:
    """Grade every submission with ``jobs`` workers at a time; reports in submission order."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    reports: dict[int, Report] = {}
    bar = Progress(len(submissions), f"grading {lab.name}", enabled=progress)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade, lab, student, path, limits, hidden=hidden): i
                   for i, (student, path) in enumerate(submissions)}
        for future in as_completed(futures):
            i = futures[future]
            reports[i] = future.result()
            bar.advance(f"{submissions[i][0]}: {reports[i].score:g}/{reports[i].max_score:g}")
    bar.close()
    return [reports[i] for i in range(len(submissions))]


def by_lab(submissions: list[tuple[str, Path]], labs: dict[str, Lab],
           forced: str | None = None) -> Iterator[tuple[Lab | None, str, Path]]:
    """Pair each submission with its lab: ``forced``, else the one named in its metadata."""
    from . import notebook

    for student, path in submissions:
        name = forced
        if name is None:
            try:
                name = notebook.read(path).metadata.get("mlsys", {}).get("lab")
            except notebook.LabFormatError:
                name = None
        yield labs.get(name) if isinstance(name, str) else None, student, path
