"""The serving lab grades a batching policy by what it does on the serving simulator.

Its tests run here, in this process, on the lab's own cells, for policies that are wrong in the
ways a learner's can be: each earns the tests it deserves and fails the others with a message that
says why. (The sandboxed grading of the reference, the student version and a submission that
wraps the library's own policy is in ``test_labs.py``, with the other labs.)
"""

from __future__ import annotations

import pytest

from mlsys.grading import checks, labs, notebook, runner

SECRET = "serving lab tests"

# The body of batch_decision(state, target), the policy tests it passes, and a phrase of the
# message of the first one it fails.
POLICIES = {
    "reference": (None, {"runs", "target", "fixed"}, ""),
    "sends at once": ("return dispatch(min(len(state.arrivals), MAX_BATCH))", {"runs", "target"},
                      "fewer than the best fixed setting"),
    "waits half the target": ("n = len(state.arrivals)\n"
                              "if n >= MAX_BATCH:\n    return dispatch(MAX_BATCH)\n"
                              "left = target / 2 - state.oldest_wait\n"
                              "return wait(left) if left > 0 else dispatch(n)",
                              {"runs", "target"}, "fewer than the best fixed setting"),
    "forgets the service time": ("n = len(state.arrivals)\n"
                                 "if n >= MAX_BATCH:\n    return dispatch(MAX_BATCH)\n"
                                 "left = target - state.oldest_wait\n"
                                 "return wait(left) if left > 0 else dispatch(n)",
                                 {"runs"}, "is over the target"),
    "waits for a full batch": ("n = len(state.arrivals)\n"
                               "return dispatch(MAX_BATCH) if n >= MAX_BATCH else wait()",
                               set(), "waits forever"),
    "polls": ("if state.oldest_wait < target / 2:\n    return wait(1e-7)\n"
              "return dispatch(min(len(state.arrivals), MAX_BATCH))", set(), "wait until something"),
    "returns a tuple": ("return (len(state.arrivals), 0.0)", set(), "expected a Decision"),
}
TESTS = {"test_policy_runs": "runs", "test_meets_target": "target", "test_beats_fixed": "fixed"}


@pytest.fixture(scope="module")
def lab_namespace():
    """The lab's reference cells run once, here; its simulations are cached in them, so the best
    fixed setting is found once for all the policies."""
    lab = labs.get("serving")
    namespace: dict = {"__name__": "mlsys_lab_serving"}
    for cell in lab.source.cells:
        if cell.cell_type == "code" and not notebook.is_test(cell):
            exec(compile(cell.source, "<serving lab>", "exec"), namespace)
    checks.use_secret(SECRET)
    yield lab, namespace
    checks.use_secret(None)


@pytest.mark.parametrize("name", POLICIES)
def test_a_policy_earns_what_it_does(lab_namespace, name: str) -> None:
    lab, namespace = lab_namespace
    body, passes, phrase = POLICIES[name]
    if body is not None:
        source = "def batch_decision(state, target):\n" + "".join(
            f"    {line}\n" for line in body.splitlines())
        exec(compile(source, f"<{name}>", "exec"), namespace)
    results = {TESTS[t.grade_id]: runner.run_test(t, namespace, hidden=True)
               for t in lab.tests if t.grade_id in TESTS}
    assert {test for test, (passed, _) in results.items() if passed} == passes, results
    failed = [message for _, (passed, message) in results.items() if not passed]
    assert not failed or phrase in failed[0], failed[0]
