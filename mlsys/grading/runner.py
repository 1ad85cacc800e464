"""Run one submission in its own kernel and score its graded tests.

:func:`run_submission` executes the submission's cells in a fresh Jupyter kernel (a separate OS
process with an address-space limit) and, at each graded test's place, the instructor's version of
that test through the :mod:`~mlsys.grading.guard` installed before the first student cell. Test
cells come from the lab's source, never from the submission, so editing or deleting a visible test
changes nothing; a verdict counts only if it carries the right nonce and signature.

The kernel runs with a cap on its address space, no core dumps, and dies with the process that
started it (Linux), so a killed grader leaves no kernel behind.
"""

from __future__ import annotations

import ast
import ctypes
import hashlib
import inspect
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from . import guard, notebook
from .interactive import GRADING_ENV
from .labs import Lab
from .notebook import GradedTest

# Modules every test relies on; a lab adds its own with metadata.mlsys.protect.
PROTECTED = ("math", "numpy", "numpy.linalg", "numpy.testing", "mlsys.grading.checks",
             "mlsys.tensor", "mlsys.backward", "mlsys.ops.registry")
KERNEL_ENV = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
DEFAULT_MEMORY_MB = 4096
BOOT_TIMEOUT_S = 120.0  # the harness imports the engine first; slow on a loaded machine
MAX_NOTES = 10
_PR_SET_PDEATHSIG = 1
# Introspection that lab code never needs and that reaches into the test harness. The guard cannot
# stop code in the kernel's own interpreter from using it (a function's closure holds the signing
# key), so the grader flags such cells for an instructor to review.
SUSPICIOUS = ("__closure__", "cell_contents", "__code__", "_getframe", "f_locals", "f_back",
              "get_objects", "get_referrers", "ctypes", "settrace", "setprofile", "hmac", "_mlsys_")


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
    notes: list[str] = field(default_factory=list)  # cell errors, time-outs, crashes
    seconds: float = 0.0

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
        return cls(data["student"], data["lab"], tests, list(data["notes"]), data["seconds"])

    @classmethod
    def failed(cls, lab: Lab, student: str, why: str, seconds: float = 0.0) -> Report:
        """A submission that could not be run at all: every test scores zero with ``why``."""
        tests = [Outcome(t.grade_id, 0.0, t.points, False, why) for t in lab.tests]
        return cls(student, lab.name, tests, [why], seconds)


@dataclass(frozen=True)
class Limits:
    """Time limits (seconds) per cell and per submission, and the kernel's memory (MiB)."""

    cell_timeout: float
    timeout: float
    memory_mb: int = DEFAULT_MEMORY_MB

    @classmethod
    def for_lab(cls, lab: Lab, cell_timeout: float | None = None, timeout: float | None = None,
                memory_mb: int | None = None) -> Limits:
        limits = cls(lab.cell_timeout if cell_timeout is None else float(cell_timeout),
                     lab.timeout if timeout is None else float(timeout),
                     DEFAULT_MEMORY_MB if memory_mb is None else int(memory_mb))
        for name, value in asdict(limits).items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        return limits


def plan(lab: Lab, submission: Any, *, hidden: bool) -> list[tuple[str, Any]]:
    """The steps to execute: ``("code", source)`` and ``("test", GradedTest)`` in notebook order.

    Graded cells are matched by ``grade_id`` and replaced by the lab's own version (with hidden
    tests when ``hidden``); locked instructor cells are restored from the source; tests missing
    from the submission run at the end. Everything else the student wrote runs as it is.
    """
    tests = {t.grade_id: t for t in lab.tests}
    locked = {notebook.nbgrader_meta(c).get("grade_id"): c for c in lab.source.cells
              if notebook.is_locked(c) and c.cell_type == "code"}
    steps: list[tuple[str, Any]] = []
    used: set[str] = set()
    for cell in submission.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = notebook.nbgrader_meta(cell).get("grade_id")
        if gid in tests:
            if gid not in used:
                used.add(gid)
                steps.append(("test", tests[gid]))
        elif gid in locked:
            steps.append(("code", locked[gid].source))
        else:
            steps.append(("code", str(cell.get("source", ""))))
    steps += [("test", t) for t in lab.tests if t.grade_id not in used]
    if not hidden:
        steps = [(k, GradedTest(v.grade_id, v.points, v.visible, v.visible) if k == "test" else v)
                 for k, v in steps]
    return steps


def review_flags(steps: list[tuple[str, Any]]) -> list[str]:
    """``review: cell N uses ...`` for every code step that contains a :data:`SUSPICIOUS` word."""
    flags = []
    for index, (kind, item) in enumerate(steps, start=1):
        found = [word for word in SUSPICIOUS if kind == "code" and word in item]
        if found:
            flags.append(f"review: cell {index} uses {', '.join(found)}")
    return flags


def _confine(megabytes: int) -> Any:
    """The kernel's ``preexec_fn``: memory cap, no core dumps, die with the parent (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def apply() -> None:  # runs in the kernel's process between fork and exec
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return apply


def _kernel_env(lab: Lab) -> dict[str, str]:
    import mlsys

    env = {**os.environ, **KERNEL_ENV, **lab.env, GRADING_ENV: "1"}
    root = str(Path(mlsys.__file__).resolve().parents[1])  # the grader's own mlsys
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _errors(cell: Any) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.outputs
            if o.get("output_type") == "error"]


def _verdict(cell: Any, test: GradedTest, key: bytes, nonce: str) -> tuple[bool, str]:
    """Read the guard's signed verdict from the cell's results; anything else fails the test."""
    verdicts = []
    for out in cell.outputs:
        if out.get("output_type") != "execute_result":
            continue
        try:
            data = json.loads(ast.literal_eval(out["data"]["text/plain"]))
        except (KeyError, ValueError, SyntaxError, TypeError):
            continue
        if isinstance(data, dict) and data.get("nonce") == nonce:
            verdicts.append(data)
    if len(verdicts) != 1:
        errors = _errors(cell)
        return False, ("no verdict from the test harness" + (f" ({errors[0]})" if errors else "")
                       if not verdicts else "more than one verdict for one test (forged)")
    v = verdicts[0]
    passed = v.get("passed") is True
    if v.get("id") != test.grade_id or v.get("signature") != guard.sign(key, test.grade_id,
                                                                          nonce, passed):
        return False, "the verdict's signature does not match (forged)"
    return passed, str(v.get("message", ""))


def _execute(client: NotebookClient, source: str, *, history: bool = True) -> Any:
    """Run ``source`` as the next cell of the client's notebook; returns the executed cell."""
    cell = nbformat.v4.new_code_cell(source)
    client.nb.cells.append(cell)
    client.execute_cell(cell, len(client.nb.cells) - 1, store_history=history)
    return cell


def _bootstrap(name: str, key: bytes, hashes: dict[str, str], protected: list[str]) -> str:
    source = inspect.getsource(guard)
    return (f"def _mlsys_boot(ns):\n"
            f"    g = {{'__name__': 'mlsys_guard'}}\n"
            f"    exec(compile({source!r}, '<mlsys guard>', 'exec'), g)\n"
            f"    ns[{name!r}] = g['install'](ns, {key.hex()!r}, {hashes!r}, {protected!r})\n"
            f"_mlsys_boot(globals())\n"
            f"del _mlsys_boot\n")


def run_submission(lab: Lab, submission: Any, student: str, limits: Limits, *,
                   hidden: bool = True) -> Report:
    """Grade one submission (a notebook node) in a fresh kernel; never raises for its faults."""
    start = time.monotonic()
    steps = plan(lab, submission, hidden=hidden)
    report = Report(student, lab.name, notes=review_flags(steps))
    hashes = {t.grade_id: hashlib.sha256(t.source.encode()).hexdigest()
              for kind, t in steps if kind == "test"}
    key, name = secrets.token_bytes(32), f"_mlsys_{secrets.token_hex(8)}"
    protected = list(dict.fromkeys([*PROTECTED, *lab.meta.get("protect", [])]))
    workdir = Path(tempfile.mkdtemp(prefix="mlsys-grade-"))
    for data in lab.data_files:
        shutil.copy2(data, workdir / data.name)
    client = NotebookClient(nbformat.v4.new_notebook(), timeout=limits.cell_timeout,
                            kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    deadline = start + limits.timeout
    pending = [t for kind, t in steps if kind == "test"]
    stopped = ""
    try:
        with client.setup_kernel(env=_kernel_env(lab), preexec_fn=_confine(limits.memory_mb),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            client.timeout = int(max(1.0, min(BOOT_TIMEOUT_S, deadline - time.monotonic())))
            boot = _execute(client, _bootstrap(name, key, hashes, protected), history=False)
            if _errors(boot):
                raise RuntimeError(f"the grading harness failed to start: {_errors(boot)[0]}")
            for index, (kind, item) in enumerate(steps, start=1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stopped = f"the submission used up its {limits.timeout:g} s time limit"
                    break
                client.timeout = max(1, int(min(limits.cell_timeout, remaining)))
                if kind == "code":
                    cell = _execute(client, item)
                    if _errors(cell) and len(report.notes) < MAX_NOTES:
                        report.notes.append(f"cell {index}: {_errors(cell)[0][:300]}")
                    continue
                nonce = secrets.token_hex(16)
                cell = _execute(client, f"{name}({item.grade_id!r}, {item.source!r}, {nonce!r})",
                                history=False)
                passed, message = _verdict(cell, item, key, nonce)
                report.tests.append(Outcome(item.grade_id, item.points if passed else 0.0,
                                            item.points, passed, message))
                pending.remove(item)
    except CellTimeoutError:
        stopped = f"a cell ran longer than the {client.timeout} s limit (an endless loop?)"
    except DeadKernelError:
        stopped = ("the kernel died (sys.exit/os._exit, a crash, or more than "
                   f"{limits.memory_mb} MiB of memory)")
    except Exception as error:  # the kernel would not start, or the connection broke
        stopped = f"{type(error).__name__}: {error}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if stopped:
        report.notes.append(stopped)
        report.tests += [Outcome(t.grade_id, 0.0, t.points, False, f"not run: {stopped}")
                         for t in pending]
    order = {t.grade_id: i for i, t in enumerate(lab.tests)}
    report.tests.sort(key=lambda o: order[o.grade_id])
    report.seconds = time.monotonic() - start
    return report


def run_path(lab: Lab, path: Path, student: str, limits: Limits, *, hidden: bool = True) -> Report:
    """Grade the notebook file at ``path``; an unreadable file scores zero with the reason."""
    try:
        submission = notebook.read(path)
    except notebook.LabFormatError as error:
        return Report.failed(lab, student, str(error))
    return run_submission(lab, submission, student, limits, hidden=hidden)
