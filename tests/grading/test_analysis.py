"""The static analysis: a graded function that reaches the library's implementation of its task is
caught however it gets there, code the analysis cannot follow counts against it, and patching is
reported; the shipped reference solutions are clean."""

from __future__ import annotations

import pytest
from lab_helpers import submission

from mlsys.grading import labs, runner
from mlsys.grading.analysis import Analysis

SETUP = ("import numpy as np\nfrom mlsys.comm.schedules import Schedule, Step, chunk_ranges\n"
         "from mlsys.grading import checker\n\ndef helper(p):\n    return p\n", True)
FORBID = ["mlsys.comm", "notebook.helper"]
ALLOW = ["mlsys.comm.schedules.Step", "mlsys.comm.schedules.Schedule",
         "mlsys.comm.schedules.chunk_ranges"]
HONEST = """
def ring_all_reduce(p, n):
    steps = [Step(k, r, (r + 1) % p, (r - k - 1) % p, "reduce") for k in range(p - 1)
             for r in range(p)]
    return Schedule("all_reduce", "ring", p, n, chunk_ranges(n, p), tuple(steps))
"""
CAUGHT = {
    "imported": "from mlsys.comm.schedules import ALGORITHMS\n"
                "def ring_all_reduce(p, n):\n    return ALGORITHMS['ring'](p, n)",
    "module alias": "import mlsys.comm.schedules as s\nfn = s.ring\n"
                    "def ring_all_reduce(p, n):\n    return fn(p, n)",
    "getattr": "import mlsys.comm as c\n"
               "def ring_all_reduce(p, n):\n    return getattr(c.schedules, 'ring')(p, n)",
    "re-export": "import mlsys\n"
                 "def ring_all_reduce(p, n):\n    return mlsys.comm.ALGORITHMS['ring'](p, n)",
    "wrapper": "def _impl(p, n):\n    from mlsys.comm import schedules\n"
               "    return schedules.build('all_reduce', 'ring', p, n)\n"
               "def ring_all_reduce(p, n):\n    return _impl(p, n)",
    "bound by import": "from mlsys.comm.schedules import ring as ring_all_reduce",
    "lambda": "import mlsys.comm.schedules as S\nring_all_reduce = lambda p, n: S.ring(p, n)",
    "local alias": "def ring_all_reduce(p, n):\n    import mlsys.comm.schedules as s\n"
                   "    f = s\n    for _ in range(3):\n        f = f\n    return f.ring(p, n)",
    "decorator": "import mlsys.comm.schedules as s\n"
                 "@s.ring.__call__\ndef ring_all_reduce(p, n):\n    pass",
    "default argument": "import mlsys.comm.schedules as s\n"
                        "def ring_all_reduce(p, n, how=s.ring):\n    return how(p, n)",
    "class method": "import mlsys.comm.schedules as s\nclass R:\n    def go(self, p, n):\n"
                    "        return s.ring(p, n)\nring_all_reduce = R().go",
    "instructor helper": "def ring_all_reduce(p, n):\n    return helper(p)",
    "eval": "def ring_all_reduce(p, n):\n    return eval('ri' + 'ng')(p, n)",
    "computed getattr": "import sys\ndef ring_all_reduce(p, n):\n"
                        "    return getattr(sys.modules['mlsys.comm.schedules'], 'ri' + 'ng')(p, n)",
    "__import__": "def ring_all_reduce(p, n):\n    return __import__('mlsys').comm.ALGORITHMS['ring'](p, n)",
    "importlib": "import importlib\nm = importlib.import_module('mlsys.comm.' + 'schedules')\n"
                 "def ring_all_reduce(p, n):\n    return m.ring(p, n)",
    "dunder": "def ring_all_reduce(p, n):\n    return chunk_ranges.__globals__['ring'](p, n)",
    "globals": "def ring_all_reduce(p, n):\n    return globals()['helper'](p)",
}


def _violations(code: str) -> list[str]:
    analysis = Analysis([SETUP, (code, False)])
    return analysis.violations("ring_all_reduce", FORBID, ALLOW)


def test_honest_code_and_allowed_names_pass() -> None:
    assert _violations(HONEST) == []
    assert _violations("def ring_all_reduce(p, n):\n    %time x = 1\n    return x\n") == []


@pytest.mark.parametrize("route", list(CAUGHT))
def test_every_route_to_the_library_is_caught(route: str) -> None:
    found = _violations(CAUGHT[route])
    assert found, f"{route}: not caught"
    assert all("(cell 2, line" in why for why in found)


def test_the_message_names_what_and_where() -> None:
    (why, *_) = _violations(CAUGHT["module alias"])
    assert why.startswith("uses mlsys.comm.schedules.ring") and "cell 2, line" in why
    (why, *_) = _violations(CAUGHT["eval"])
    assert why == "uses eval, which the grader cannot follow (cell 2, line 2)"


def test_method_names_are_caught_on_any_object() -> None:
    analysis = Analysis([("def backward(root):\n    root.backward()\n    return root.grad\n",
                          False)])
    assert analysis.violations("backward", [".backward"]) == ["calls .backward (cell 1, line 2)"]


def test_patching_is_reported_anywhere_in_the_learners_cells() -> None:
    code = ("import numpy as np\nimport mlsys.kernels.traffic as t\nnp.abs = abs\n"
            "def f():\n    t.counts['x'] = 0\n    setattr(np, 'sum', min)\n")
    uses = {u.what for u in Analysis([SETUP, (code, False)]).patches()}
    assert {"an assignment to numpy.abs", "an assignment to mlsys.kernels.traffic.counts[...]",
            "setattr"} <= uses
    assert Analysis([(code, True)]).patches() == []  # the instructor's cells are not judged


@pytest.mark.parametrize("name", list(labs.available()))
def test_the_reference_solutions_are_clean(name: str) -> None:
    lab = labs.get(name)
    analysis = Analysis(runner.plan(lab, submission(lab)))
    verdicts = runner.disqualifications(lab, analysis)
    assert verdicts and all(v == [] for v in verdicts.values()), verdicts
    assert analysis.patches() == []
