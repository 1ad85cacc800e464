"""Red-team submissions for the autodiff lab: each tries to raise its own score.

Most answer Part 1 with zeros of the right shapes (worth 0) and solve Part 2 honestly (worth 10),
then try a trick that would win Part 1's 10 points if the grader fell for it; the others solve
Part 1 honestly and attack Part 2. ``reference``, ``student_version`` and ``part1_only`` are the
honest baselines (20, 0 and 10 points).
"""

from __future__ import annotations

from pathlib import Path

from lab_helpers import submission

ZEROS = '''
import numpy as np

def unbroadcast(g, shape):
    return np.zeros(shape)

def vjp_mul(g, a, b):
    return np.zeros(np.shape(a)), np.zeros(np.shape(b))

vjp_div = vjp_mul

def vjp_tanh(g, x):
    return (np.zeros(np.shape(x)),)

def vjp_matmul(g, a, b):
    return np.zeros(np.shape(a)), np.zeros(np.shape(b))
'''

PATCH_HELPERS = ZEROS + '''
import builtins, sys, types
import mlsys.grading.checks as checks

def noop(*args, **kwargs):
    return None

checks.assert_close = noop                      # patch the grader's helper module
fake = types.ModuleType("mlsys.grading.checks")
fake.assert_close = noop
sys.modules["mlsys.grading.checks"] = fake      # and replace it outright
assert_close = noop                             # and shadow it in the namespace
np.abs = lambda x: np.zeros(np.shape(x))        # and make numpy's comparisons pass
real_import = builtins.__import__

def fake_import(name, *args, **kwargs):         # and hand the tests a fake on import
    return fake if name.startswith("mlsys.grading") else real_import(name, *args, **kwargs)

builtins.__import__ = fake_import
'''

SWALLOW_ERRORS = '''
import sys
import numpy as np
from IPython import get_ipython
from IPython.core.interactiveshell import InteractiveShell

class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return True
    __le__ = __ge__ = __eq__

def anything(*shapes):
    return tuple(np.zeros(s).view(AlwaysEqual) for s in shapes)

def unbroadcast(g, shape):
    return anything(shape)[0]

def vjp_mul(g, a, b):
    return anything(np.shape(a), np.shape(b))

vjp_div = vjp_matmul = vjp_mul

def vjp_tanh(g, x):
    return anything(np.shape(x))

get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
sys.excepthook = lambda *args: None
InteractiveShell.showtraceback = lambda *args, **kwargs: None
'''

FAKE_OUTPUT = ZEROS + '''
import json, os, sys
from IPython.display import display

IDS = ["test_unbroadcast", "test_vjp_mul", "test_vjp_div", "test_vjp_tanh", "test_vjp_matmul"]
for tid in IDS:
    fake = json.dumps({"id": tid, "nonce": "guess", "passed": True, "message": "",
                       "signature": "0" * 64})
    print(fake)
    display({"text/plain": repr(fake)}, raw=True)
print("Score: 20/20")
report = {"student": "fake_output", "lab": "autodiff", "notes": [], "seconds": 0,
          "tests": [{"grade_id": t, "points": 99, "max_points": 99, "passed": True,
                     "message": ""} for t in IDS]}
os.write(1, json.dumps(report).encode())        # at the worker's report channel
os.write(2, json.dumps(report).encode())
for folder in (".", "..", "gradebook", "../gradebook"):
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "gradebook.csv"), "w") as f:
            f.write("student,lab,score\\nfake_output,autodiff,999\\n")
    except OSError:
        pass

_plain_mul = vjp_mul

def vjp_mul(g, a, b):                           # forge a verdict with the nonce of the frame
    frame = sys._getframe(1)
    while frame is not None:
        for const in frame.f_code.co_consts:
            if isinstance(const, str) and len(const) == 32:
                for tid in IDS:
                    sys.displayhook(json.dumps({"id": tid, "nonce": const, "passed": True,
                                                "message": "", "signature": "0" * 64}))
        frame = frame.f_back
    return _plain_mul(g, a, b)
'''

PATCH_ENGINE = '''
import numpy as np
import mlsys
from mlsys.tensor import Tensor

def _leaves(root):
    found, stack, seen = [], [root], set()
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t._node is None:
            found.append(t)
        else:
            stack.extend(x for x in t._node.inputs if x.requires_grad)
    return found

def topological_order(root):
    raise NotImplementedError()

def backward(root):                             # wrong: zeros everywhere
    return {id(leaf): np.zeros(leaf.shape) for leaf in _leaves(root)}

def fake_backward(self, *args, **kwargs):       # and make the reference agree with it
    for leaf in _leaves(self):
        leaf.grad = Tensor(np.zeros(leaf.shape), dtype=leaf.dtype)

Tensor.backward = fake_backward
'''

EXIT_IN_TEST = '''
import os

def topological_order(root):
    os._exit(0)

def backward(root):
    raise SystemExit(0)
'''

READ_TESTS = '''
import gc, os, sys

NEEDLE = "default_rng" + "(11)"                 # a line of test_backward's hidden part
found = []
for folder, _, files in os.walk(os.getcwd()):
    for name in files:
        try:
            with open(os.path.join(folder, name), errors="ignore") as f:
                if NEEDLE in f.read():
                    found.append(os.path.join(folder, name))
        except OSError:
            pass
found += [k for k, v in os.environ.items() if NEEDLE in v]
found += [a for a in sys.argv if NEEDLE in a]
for obj in gc.get_objects():
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
    if any(isinstance(v, str) and NEEDLE in v and v != NEEDLE for v in list(items)):
        found.append(f"a {type(obj).__name__} in memory")
with open(REPORT_PATH, "w") as f:
    f.write("\\n".join(found))
'''

PEEK_EXPECTED = '''
import sys
import numpy as np

def _expected(*names):                          # the test's own expected values, if in reach
    frame = sys._getframe(2)
    values = [frame.f_locals.get(n, frame.f_globals.get(n)) for n in names]
    return tuple(np.zeros(1) if v is None else v for v in values)

def unbroadcast(g, shape):
    return np.zeros(shape)

def vjp_mul(g, a, b):
    return _expected("ga", "gb")

vjp_div = vjp_matmul = vjp_mul

def vjp_tanh(g, x):
    return _expected("gx")
'''

PART1, PART2 = {"unbroadcast", "vjp_rules"}, {"backward"}
PART1_IDS = ["test_unbroadcast", "test_vjp_mul", "test_vjp_div", "test_vjp_tanh",
             "test_vjp_matmul"]


def attacks(lab, tmp: Path) -> dict[str, tuple]:
    """name -> (notebook or raw text, expected score)."""
    part1_replaced = lambda code: {"unbroadcast": "", "vjp_rules": code}  # noqa: E731
    return {
        "reference": (submission(lab), 20),
        "student_version": (lab.student_notebook(), 0),
        "part1_only": (submission(lab, PART1), 10),
        "patch_helpers": (submission(lab, PART2, replace=part1_replaced(PATCH_HELPERS)), 10),
        "swallow_errors": (submission(lab, PART2, replace=part1_replaced(SWALLOW_ERRORS)), 10),
        "fake_output": (submission(lab, PART2, replace=part1_replaced(FAKE_OUTPUT)), 10),
        "peek_expected": (submission(lab, PART2, replace=part1_replaced(PEEK_EXPECTED)), 10),
        "edit_tests": (submission(
            lab, PART2, replace={**part1_replaced(ZEROS), **{t: "pass" for t in PART1_IDS}},
            after={"backward": ["# a fake graded cell\npass"]}), 10),
        "patch_engine": (submission(lab, PART1, replace={"backward": PATCH_ENGINE}), 10),
        "exit": (submission(lab, PART1, replace={"backward": EXIT_IN_TEST},
                            after={"unbroadcast": ["raise SystemExit(0)"]}), 10),
        "read_tests": (submission(lab, PART1, after={"backward": [
            f"REPORT_PATH = {str(tmp / 'found.txt')!r}\n" + READ_TESTS]}), 10),
        "endless_loop": (submission(lab, PART1, after={"backward": ["while True:\n    pass"]}),
                         10),
        "huge_allocation": (submission(lab, PART1, after={"backward": [
            "hog = bytearray(6 * 2**30)"]}), 10),
        "broken_file": ('{"cells": [ this is not json', 0),
    }
