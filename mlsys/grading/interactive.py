"""``check("test_id")``: the learner's in-notebook report on a lab's visible tests, with hints.

Each failing test reveals its next hint (``metadata.mlsys.hints`` of its cell), one more per
failed check, so a learner asks for help a step at a time. The visible tests run in the learner's
own kernel: they only inform. Grades come from the grader, which runs the tests outside it.
Standard library only at import time: the setup cell of every lab imports this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

GRADING_ENV = "MLSYS_LAB_GRADING"  # set in the grader's kernels: there, check() loads nothing


def _user_namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    return shell.user_ns if shell is not None else vars(sys.modules["__main__"])


def checker(lab: str, source: Path | None = None) -> Callable[..., bool]:
    """A ``check(*ids)`` function for ``lab``: runs those visible tests (all when no id is given)
    against the notebook's current definitions, prints one line per test, the next hint of each
    failing test and the score, and returns whether all passed. Hidden tests run only when an
    instructor grades. The lab is loaded on the first check, not here.

    Inside the grader's kernel the lab's source is never loaded: ``check`` only says so."""
    if os.environ.get(GRADING_ENV) == "1":
        def off(*ids: str) -> bool:
            print("check() is off while the grader runs this notebook")
            return False

        return off
    failures: dict[str, int] = {}
    loaded: list = []

    def check(*ids: str) -> bool:
        if not loaded:
            from .labs import get

            loaded.append(get(lab, source))
        by_id = {t.grade_id: t for t in loaded[0].tests}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise KeyError(f"check: unknown test id(s) {unknown}; this lab's tests are "
                           f"{', '.join(by_id)}")
        tests = [by_id[i] for i in ids] if ids else loaded[0].tests
        score = 0.0
        for test in tests:
            try:
                exec(compile(test.visible, f"<test {test.grade_id}>", "exec"),
                     dict(_user_namespace()))
            except Exception as error:
                print(f"FAIL {test.grade_id} (0/{test.points:g}): {type(error).__name__}: {error}")
                failures[test.grade_id] = failures.get(test.grade_id, 0) + 1
                shown = min(failures[test.grade_id], len(test.hints))
                for k in range(shown):
                    print(f"     hint {k + 1}/{len(test.hints)}: {test.hints[k]}")
                if shown < len(test.hints):
                    print("     (check again for the next hint)")
            else:
                score += test.points
                print(f"ok   {test.grade_id} ({test.points:g}/{test.points:g})")
        total = sum(t.points for t in tests)
        print(f"visible tests: {score:g}/{total:g} points"
              + (" (hidden tests are graded too)" if any(t.has_hidden for t in tests) else ""))
        return score == total

    return check
