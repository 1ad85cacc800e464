"""The kernel-side guard, exercised in this process (no kernel): verdicts, restoration, signing."""

from __future__ import annotations

import builtins
import hashlib
import json

import numpy as np
import pytest

import mlsys.grading.checks as checks
from mlsys.grading import guard, runner

KEY = "ab" * 32


def _install(ns: dict, tests: dict[str, str]):
    hashes = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in tests.items()}
    return guard.install(ns, KEY, hashes, ["numpy", "mlsys.grading.checks"])


def _run(run, tests, grade_id, nonce="n0") -> dict:
    return json.loads(run(grade_id, tests[grade_id], nonce))


def test_verdicts_are_signed_over_id_nonce_and_outcome() -> None:
    tests = {"ok": "assert answer == 42", "bad": "assert answer == 41, 'wrong answer'"}
    run = _install({"answer": 42}, tests)
    ok, bad = _run(run, tests, "ok", "n1"), _run(run, tests, "bad", "n2")
    assert ok["passed"] and ok["signature"] == guard.sign(bytes.fromhex(KEY), "ok", "n1", True)
    assert not bad["passed"] and bad["message"] == "AssertionError: wrong answer"
    assert bad["signature"] == guard.sign(bytes.fromhex(KEY), "bad", "n2", False)
    assert ok["signature"] != guard.sign(bytes.fromhex(KEY), "ok", "n2", True)  # fresh per nonce


def test_helpers_patched_before_the_test_are_restored() -> None:
    tests = {"t": "from mlsys.grading.checks import assert_close\nassert_close(1.0, 2.0)"}
    run = _install({}, tests)
    real_close, real_abs, real_len = checks.assert_close, np.abs, builtins.len
    checks.assert_close = lambda *a, **k: None
    np.abs = lambda x: np.zeros_like(x)
    builtins.len = lambda x: 0
    try:
        verdict = _run(run, tests, "t")
    finally:
        checks.assert_close, np.abs, builtins.len = real_close, real_abs, real_len
    assert not verdict["passed"] and "values differ" in verdict["message"]


def test_patching_during_the_test_fails_it_and_is_undone() -> None:
    def sneaky():
        checks.assert_close = lambda *a, **k: None
        return 0.0

    tests = {"t": "from mlsys.grading.checks import assert_close\nassert_close(sneaky(), 0.0)"}
    run = _install({"sneaky": sneaky}, tests)
    real = checks.assert_close
    verdict = _run(run, tests, "t")
    assert not verdict["passed"] and "mlsys.grading.checks.assert_close" in verdict["message"]
    assert checks.assert_close is real


def test_an_altered_test_source_fails() -> None:
    tests = {"t": "assert False"}
    run = _install({}, tests)
    verdict = json.loads(run("t", "pass", "n"))
    assert not verdict["passed"] and "altered" in verdict["message"]


@pytest.mark.parametrize("body, expected", [
    ("raise SystemExit(0)", "SystemExit: 0"),
    ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ("class Bad:\n    def __str__(self):\n        raise ValueError\nraise RuntimeError(Bad())",
     "RuntimeError: <unprintable>"),
])
def test_every_exception_fails_the_test_without_escaping(body: str, expected: str) -> None:
    tests = {"t": body}
    verdict = _run(_install({}, tests), tests, "t")
    assert not verdict["passed"] and verdict["message"] == expected


def test_tests_run_in_a_copy_of_the_namespace() -> None:
    ns = {"x": 1}
    tests = {"t": "x = 2\ny = 3"}
    assert _run(_install(ns, tests), tests, "t")["passed"]
    assert ns == {"x": 1}


def test_checks_refuse_objects_that_claim_equality() -> None:
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    with pytest.raises(AssertionError, match="expected a numpy array"):
        checks.assert_close(AlwaysEqual(), 1.0)
    with pytest.raises(AssertionError, match="expected"):
        checks.assert_equal(AlwaysEqual(), 3)
    with pytest.raises(AssertionError, match="shape"):
        checks.assert_close(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(AssertionError, match="differ"):
        checks.assert_close(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    checks.assert_equal([1, (2, "a")], [1, (2, "a")])


def test_reaching_into_the_harness_is_flagged() -> None:
    """Code in the kernel can read the harness's closure (and its key): the grader cannot stop it
    there, so it flags the cell for review instead."""
    forge = ("run = [v for k, v in globals().items() if k.startswith('_mlsys_')][0]\n"
             "key = run.__closure__[0].cell_contents")
    steps = [("code", "x = 1"), ("code", forge)]
    assert runner.review_flags(steps) == ["review: cell 2 uses __closure__, cell_contents, _mlsys_"]
