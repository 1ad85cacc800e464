"""Grade a folder of submissions: one worker process per submission, a few at a time.

Each worker is forked from a ``multiprocessing`` fork server that has the grader imported already
(so a worker costs milliseconds, not an interpreter start), leads its own session, caps its own
address space, and grades one submission (its kernel in a sandbox, its tests in the worker). The
parent only waits, with a backstop deadline of the submission's time limit plus a margin, and
turns any failure of the worker (killed, crashed, out of memory, no report) into a zero with the
reason, never into an error of the batch. Reports arrive as they finish (``on_report``), so the
caller can save each one at once; Ctrl-C kills the running workers and raises
:class:`KeyboardInterrupt` after them, with everything finished so far already reported.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from . import runner
from .labs import Lab
from .progress import Progress
from .runner import Limits, Report

BACKSTOP_MARGIN_S = 60.0
WORKER_MEMORY_MB = 4096  # the grader's own worker: decoding, the tests, the library it runs
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
          hidden: bool, secret: str | None, memory_mb: int) -> None:
    """The worker: grade one notebook and send the report's JSON back through ``channel``."""
    os.setsid()  # its own session, so the backstop can kill everything it started
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    lab = Lab.load(Path(lab_folder))
    channel.send(runner.run_path(lab, Path(path), student, limits, hidden=hidden,
                                 secret=secret).to_json())
    channel.close()


class _Running:
    """The workers alive now, so that an interrupted batch can kill them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: set[Any] = set()
        self.stopping = threading.Event()

    def kill_all(self) -> None:
        self.stopping.set()
        with self.lock:
            for worker in list(self.workers):
                _kill(worker)


def grade_one(lab: Lab, student: str, path: Path, limits: Limits, *, hidden: bool = True,
              secret: str | None = None, running: _Running | None = None) -> Report:
    """Grade one notebook in an isolated worker process; always returns a report."""
    backstop = limits.timeout + BACKSTOP_MARGIN_S
    digest = runner.file_digest(path)
    memory = max(WORKER_MEMORY_MB, limits.memory_mb)
    receive, send = _WORKERS.Pipe(duplex=False)
    worker = _WORKERS.Process(target=_work, args=(send, str(lab.folder), str(path), student,
                                                  limits, hidden, secret, memory))
    with _STARTING:
        if running is not None and running.stopping.is_set():
            raise KeyboardInterrupt
        worker.start()
        if running is not None:
            with running.lock:
                running.workers.add(worker)
    send.close()
    try:
        if not receive.poll(backstop):
            _kill(worker)
            return Report.failed(lab, student, f"grading did not finish within {backstop:g} s",
                                 digest=digest)
        return Report.from_json(receive.recv())
    except (EOFError, OSError, ValueError, KeyError, TypeError):
        worker.join(5)
        if running is not None and running.stopping.is_set():
            raise KeyboardInterrupt from None
        return Report.failed(lab, student, f"the grading worker failed (exit code "
                                           f"{worker.exitcode}; more than {memory} MiB, or a "
                                           f"crash)", digest=digest)
    finally:
        receive.close()
        worker.join(5)
        if worker.is_alive():
            _kill(worker)
        if running is not None:
            with running.lock:
                running.workers.discard(worker)


def _kill(worker: Any) -> None:
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    worker.join()


def grade_all(lab: Lab, submissions: list[tuple[str, Path]], limits: Limits, *, jobs: int = 2,
              hidden: bool = True, secret: str | None = None, progress: bool = True,
              on_report: Callable[[Report], None] | None = None) -> list[Report]:
    """Grade every submission with ``jobs`` workers at a time; reports in submission order.

    ``on_report`` sees each report as soon as it is ready (to save it). On Ctrl-C the running
    workers are killed and :class:`KeyboardInterrupt` propagates; reports already handed to
    ``on_report`` stay valid."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    reports: dict[int, Report] = {}
    bar = Progress(len(submissions), f"grading {lab.name}", enabled=progress)
    running = _Running()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(grade_one, lab, student, path, limits, hidden=hidden,
                               secret=secret, running=running): i
                   for i, (student, path) in enumerate(submissions)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                i = futures[future]
                reports[i] = future.result()
                if on_report is not None:
                    on_report(reports[i])
                bar.advance(f"{submissions[i][0]}: {reports[i].score:g}/"
                            f"{reports[i].max_score:g}")
    except BaseException:
        running.kill_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
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
                name = notebook.mlsys_meta(notebook.read(path)).get("lab")
            except notebook.LabFormatError:
                name = None
        yield labs.get(name) if isinstance(name, str) else None, student, path
