"""Grade one submission: its cells run sandboxed, its tests run here.

1. :func:`plan` picks the cells the learner's kernel runs: the submission's own code cells, with
   every instructor cell (setup, helpers) restored from the lab's source and no test cell.
2. :class:`~.analysis.Analysis` reads that code: a graded function that reaches the library's
   own implementation of its task, or code the grader cannot follow, is disqualified; patching
   is noted for review.
3. The cells run in a fresh kernel inside an operating-system sandbox (:mod:`.session`,
   :mod:`.sandbox`); errors become notes.
4. Each graded test cell (the lab's version, hidden tests included) runs **in this process**, in
   a namespace built from the lab's own setup cells, where every name of the lab's interface is
   a :class:`Remote`: calling it calls the learner's function in the kernel with plain data and
   returns plain data (:mod:`.wire`). Expected values and comparisons never enter the kernel, and
   no secret exists there to steal.

A kernel that dies is restarted (its cells run again) for the tests after it, a few times at
most; a test that finds no kernel scores zero with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import checks, notebook, sandbox
from .analysis import Analysis
from .interactive import GRADING_ENV
from .kernel import describe
from .labs import BUILTIN_LABS, Lab
from .notebook import GradedTest
from .session import KernelGone, LearnerError, Session

DEFAULT_MEMORY_MB = 4096
BOOT_TIMEOUT_S = 120.0  # the kernel imports the engine first; slow on a loaded machine
MAX_NOTES = 10
MAX_RESTARTS = 2


class Disqualified(AssertionError):
    """A graded name the analysis rejected: the tests that call it score zero."""


@dataclass
class Outcome:
    """The result of one graded test."""

    grade_id: str
    points: float
    max_points: float
    passed: bool
    message: str = ""


@dataclass
class Report:
    """Everything the grader learned about one submission."""

    student: str
    lab: str
    tests: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # cell errors, time-outs, crashes, reviews
    seconds: float = 0.0
    digest: str = ""  # SHA-256 of the submitted file (``--resume`` regrades a changed file)
    sandbox: str = ""

    @property
    def score(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_points for t in self.tests)

    def to_json(self) -> dict:
        return {**asdict(self), "score": self.score, "max_score": self.max_score}

    @classmethod
    def from_json(cls, data: dict) -> Report:
        tests = [Outcome(**t) for t in data["tests"]]
        return cls(data["student"], data["lab"], tests, list(data["notes"]), data["seconds"],
                   data.get("digest", ""), data.get("sandbox", ""))

    @classmethod
    def failed(cls, lab: Lab, student: str, why: str, seconds: float = 0.0,
               digest: str = "") -> Report:
        """A submission that could not be run at all: every test scores zero with ``why``."""
        tests = [Outcome(t.grade_id, 0.0, t.points, False, why) for t in lab.tests]
        return cls(student, lab.name, tests, [why], seconds, digest)


@dataclass(frozen=True)
class Limits:
    """Time limits (seconds) per cell and per submission, the kernel's memory (MiB) and the
    sandbox kind (see :mod:`.sandbox`; ``auto`` picks the best this machine has)."""

    cell_timeout: float
    timeout: float
    memory_mb: int = DEFAULT_MEMORY_MB
    sandbox: str = "auto"

    @classmethod
    def for_lab(cls, lab: Lab, cell_timeout: float | None = None, timeout: float | None = None,
                memory_mb: int | None = None, sandbox_kind: str = "auto") -> Limits:
        limits = cls(lab.cell_timeout if cell_timeout is None else float(cell_timeout),
                     lab.timeout if timeout is None else float(timeout),
                     DEFAULT_MEMORY_MB if memory_mb is None else int(memory_mb), sandbox_kind)
        for name in ("cell_timeout", "timeout", "memory_mb"):
            value = getattr(limits, name)
            if not value > 0 or value != value or value == float("inf"):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
        if sandbox_kind not in (*sandbox.KINDS, "auto"):
            raise ValueError(f"unknown sandbox {sandbox_kind!r}; expected auto or one of "
                             f"{', '.join(sandbox.KINDS)}")
        return limits


def plan(lab: Lab, submission: Any) -> list[tuple[str, bool]]:
    """The cells the learner's kernel runs, as ``(source, trusted)`` in order.

    Code cells of the submission run as they are, except that a cell carrying the ``grade_id``
    of an instructor cell is replaced by the source's version (trusted) and graded test cells are
    left out (tests run in the grader). Instructor cells the submission lacks are added: those
    before the first solution cell of the source at the start, the others at the end.
    """
    test_ids = {t.grade_id for t in lab.tests}
    locked = [c for c in lab.source.cells if c.cell_type == "code" and notebook.is_locked(c)]
    by_id = {notebook.nbgrader_meta(c).get("grade_id"): c for c in locked}
    cells: list[tuple[str, bool]] = []
    used: set[int] = set()
    for cell in submission.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = notebook.nbgrader_meta(cell).get("grade_id")
        if isinstance(gid, str) and gid in test_ids:
            continue
        if isinstance(gid, str) and gid in by_id:
            if id(by_id[gid]) not in used:
                used.add(id(by_id[gid]))
                cells.append((by_id[gid].source, True))
            continue
        cells.append((cell.source, False))
    first_solution = next((i for i, c in enumerate(lab.source.cells)
                           if notebook.nbgrader_meta(c).get("solution")), len(lab.source.cells))
    position = {id(c): i for i, c in enumerate(lab.source.cells)}
    missing = [c for c in locked if id(c) not in used]
    before = [(c.source, True) for c in missing if position[id(c)] < first_solution]
    after = [(c.source, True) for c in missing if position[id(c)] >= first_solution]
    return before + cells + after


def disqualifications(lab: Lab, analysis: Analysis) -> dict[str, list[str]]:
    """For each name of the lab's interface, why its tests score zero (empty: they do not).

    A learner's name is judged by what it reaches (its task's forbidden paths and code the
    analysis cannot follow); an instructor's helper that runs in the kernel inherits the verdicts
    of the learner's names it calls, and is void if the submission patches anything, because it
    measures inside the kernel."""
    out: dict[str, list[str]] = {}
    patches = analysis.patches()
    for name, graded in lab.interface.items():
        if not graded.helper:
            out[name] = analysis.violations(name, graded.forbid, graded.allow)
    for name, graded in lab.interface.items():
        if graded.helper:
            found = [f"{used}: {why}" for used in sorted(analysis.learner_names_used_by(name))
                     for why in out.get(used, [])]
            found += [f"the submission uses {use.what} ({use.where()}), and {name} measures "
                      f"inside the kernel" for use in patches]
            out[name] = found
    return out


def review_notes(analysis: Analysis) -> list[str]:
    """``review:`` notes for patching and dynamic lookups anywhere in the learner's cells."""
    notes = [f"review: {use.where()} uses {use.what}" for use in analysis.patches()]
    return list(dict.fromkeys(notes))[:MAX_NOTES]


class Kernel:
    """The submission's sandboxed kernel: started on first use, restarted after a death."""

    def __init__(self, lab: Lab, cells: Sequence[tuple[str, bool]], limits: Limits, kind: str,
                 deadline: float, notes: list[str], files: dict[str, bytes]) -> None:
        self.lab, self.cells, self.limits, self.kind = lab, list(cells), limits, kind
        self.deadline, self.notes, self.files = deadline, notes, files
        self.session: Session | None = None
        self.starts = 0
        self.broken: str | None = None  # the kernel cannot start: no use trying again
        self.skipped: set[int] = set()  # cells that killed the kernel
        self.problems: list[str] = []

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise KernelGone(f"the submission used up its {self.limits.timeout:g} s time limit")
        return left

    def ready(self) -> Session:
        """A running kernel with every cell run, starting or restarting one if needed.

        A cell that kills the kernel is noted and skipped from then on (the kernel restarts
        without it), so one fatal cell costs what depends on it, not the whole notebook."""
        while True:
            if self.session is not None and self.session.alive:
                return self.session
            if self.broken is not None:
                raise KernelGone(self.broken)
            if self.session is not None:
                self.stop()
                if self.starts > MAX_RESTARTS:
                    self.broken = (f"not run: {self.session.gone}; the kernel was restarted "
                                   f"{MAX_RESTARTS} times already")
                    raise KernelGone(self.broken)
            self._start()

    def _start(self) -> None:
        first = self.starts == 0
        self.starts += 1
        confinement = sandbox.Confinement(memory_mb=self.limits.memory_mb,
                                          cpu_seconds=self.limits.timeout + 30)
        hide = [BUILTIN_LABS.resolve(), self.lab.folder.resolve().parent]
        self.session = Session(self.kind, confinement, env={**self.lab.env, GRADING_ENV: "1"},
                               hide=hide, files=self.files, types=self.lab.types)
        try:
            self.session.start(min(BOOT_TIMEOUT_S, self.remaining()))
        except KernelGone as error:
            self.broken = str(error)
            raise
        for index, (source, _) in enumerate(self.cells, start=1):
            if index in self.skipped:
                continue
            try:
                error = self.session.run(source, min(self.limits.cell_timeout, self.remaining()))
            except KernelGone as gone:
                self.skipped.add(index)
                self.notes.append(f"cell {index}: {gone}; it is skipped from now on")
                return
            if error and first and len(self.notes) < MAX_NOTES:
                self.notes.append(f"cell {index}: {error[:300]}")

    def call(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        session = self.ready()
        return session.call(name, args, kwargs, min(self.limits.cell_timeout, self.remaining()))

    def stop(self) -> None:
        if self.session is not None:
            self.problems += self.session.stop()


class Remote:
    """A name of the learner's kernel, callable from a test running in the grader."""

    def __init__(self, kernel: Kernel, name: str, violations: Sequence[str]) -> None:
        self.kernel, self.name, self.violations = kernel, name, list(violations)
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.violations:
            raise Disqualified(
                f"{self.name} {self.violations[0]}: a graded function may not use the library's "
                f"own implementation of its task, nor code the grader cannot follow, so this test "
                f"scores 0" + (f" (and {len(self.violations) - 1} more)"
                               if len(self.violations) > 1 else ""))
        return self.kernel.call(self.name, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self.name} in the learner's kernel>"


def grader_namespace(lab: Lab, kernel: Kernel, verdicts: dict[str, list[str]]) -> dict:
    """The namespace tests run in: the lab's instructor cells executed here (except helpers that
    must run in the kernel), then every interface name bound to a :class:`Remote`."""
    namespace: dict = {"__name__": f"mlsys_lab_{lab.name}"}
    for i, cell in enumerate(lab.source.cells):
        if cell.cell_type == "code" and notebook.is_locked(cell) and \
                notebook.mlsys_meta(cell).get("kernel") is not True:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(cell.source, f"<{lab.name} cell {i}>", "exec"), namespace)
    for name in lab.interface:
        namespace[name] = Remote(kernel, name, verdicts.get(name, []))
    return namespace


def run_test(test: GradedTest, namespace: dict, *, hidden: bool) -> tuple[bool, str]:
    """Run one test cell here; ``(passed, message)``."""
    source = test.source if hidden else test.visible
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, f"<test {test.grade_id}>", "exec"), dict(namespace))
    except (KernelGone, LearnerError, Disqualified) as error:
        return False, str(error)[:2000]
    except Exception as error:
        return False, describe(error)[:2000]
    return True, ""


def run_submission(lab: Lab, submission: Any, student: str, limits: Limits, *,
                   hidden: bool = True, secret: str | None = None, digest: str = "") -> Report:
    """Grade one submission (a notebook node); never raises for its faults."""
    start = time.monotonic()
    kind = sandbox.choose(limits.sandbox)
    cells = plan(lab, submission)
    analysis = Analysis(cells)
    report = Report(student, lab.name, notes=review_notes(analysis), digest=digest, sandbox=kind)
    files = {f"{lab.name}.ipynb": notebook.dumps(submission).encode(),
             **{p.name: p.read_bytes() for p in lab.data_files}}
    kernel = Kernel(lab, cells, limits, kind, start + limits.timeout, report.notes, files)
    checks.use_secret(secret)
    try:
        try:
            namespace = grader_namespace(lab, kernel, disqualifications(lab, analysis))
        except Exception as error:  # the lab's own cells fail here: a fault of the lab
            why = f"the lab's setup failed in the grader ({describe(error)[:300]}); tell the instructor"
            return Report.failed(lab, student, why, time.monotonic() - start, digest)
        try:
            kernel.ready()  # run the cells now, so their errors are noted even if no test calls
        except KernelGone as error:
            report.notes.append(str(error))
        for test in lab.tests:
            passed, message = run_test(test, namespace, hidden=hidden)
            report.tests.append(Outcome(test.grade_id, test.points if passed else 0.0,
                                        test.points, passed, message))
        if kernel.session is not None and kernel.session.gone and \
                kernel.session.gone != "the kernel was stopped":
            report.notes.append(kernel.session.gone)
    finally:
        checks.use_secret(None)
        kernel.stop()
    report.notes += kernel.problems
    report.seconds = time.monotonic() - start
    return report


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def run_path(lab: Lab, path: Path, student: str, limits: Limits, *, hidden: bool = True,
             secret: str | None = None) -> Report:
    """Grade the notebook file at ``path``; an unreadable file scores zero with the reason."""
    digest = file_digest(path)
    try:
        submission = notebook.read(path)
    except notebook.LabFormatError as error:
        return Report.failed(lab, student, str(error), digest=digest)
    return run_submission(lab, submission, student, limits, hidden=hidden, secret=secret,
                          digest=digest)
