"""Red team: submissions that try to raise their own score, read what they must not, or spoil the
batch (see ``redteam_cases``). Each must score exactly what its honest work earns, and the honest
submissions graded beside them (``reference``, and ``zz_reference`` after every attacker) must
too. They are graded together, two at a time, each kernel in its own sandbox, through
``mlsys lab grade`` by the session fixture ``graded``.
"""

from __future__ import annotations

import csv
import os
import time

import pytest
import redteam_cases

NAMES = ["reference", "zz_reference", "student_version", "part1_only", "rebind_helpers",
         "patch_numpy", "mutate_registry", "patch_engine", "peek", "changing_values",
         "fake_output", "snoop", "split_names", "edit_tests", "overwrite", "detached",
         "library_vjps", "library_backward", "malformed_metadata", "exit", "endless_loop",
         "huge_allocation", "fork_bomb", "output_flood", "broken_file"]


def test_every_case_is_graded(graded) -> None:
    assert sorted(graded.reports) == sorted(NAMES) == sorted(graded.expected)


@pytest.mark.parametrize("name", NAMES)
def test_each_submission_scores_only_its_honest_work(graded, name: str) -> None:
    report = graded.reports[name]
    assert report.score == graded.expected[name], [(t.grade_id, t.passed, t.message)
                                                   for t in report.tests] + report.notes
    assert report.max_score == 20 and len(report.tests) == 7


def _messages(graded, name: str) -> dict[str, str]:
    return {t.grade_id: t.message for t in graded.reports[name].tests}


def test_nothing_secret_is_within_reach_of_a_submission(graded) -> None:
    # the snoop searched the file system, /proc, the environment, its memory and the network
    # for the secret, the hidden tests, other submissions, the lab source and connection files
    assert _messages(graded, "snoop")["test_unbroadcast"] == "RuntimeError: found: []"
    assert graded.connections == []


def test_library_implementations_score_zero_with_a_reason(graded) -> None:
    vjps = _messages(graded, "library_vjps")
    assert "uses mlsys.ops" in vjps["test_unbroadcast"] and "scores 0" in vjps["test_unbroadcast"]
    assert "the grader cannot follow" in vjps["test_vjp_mul"]  # getattr("vj" + "p")
    backward = _messages(graded, "library_backward")
    assert "mlsys.backward" in backward["test_topological_order"]
    assert "calls .backward" in backward["test_backward"]


def test_values_that_change_between_reads_cannot_reach_the_grader(graded) -> None:
    messages = _messages(graded, "changing_values")
    assert "values differ" in messages["test_unbroadcast"]  # an always-equal array is just data
    assert "cannot send a Shifty" in messages["test_vjp_mul"] or \
        "cannot send a" in messages["test_vjp_mul"]  # a list that changes as it is read


def test_failures_say_why(graded) -> None:
    assert "values differ" in _messages(graded, "patch_engine")["test_backward"]
    exits = _messages(graded, "exit")
    assert exits["test_vjp_mul"] == ""  # SystemExit in a cell does not stop grading
    assert "kernel died" in exits["test_topological_order"]
    assert exits["test_backward"] == "SystemExit: 0"  # the restarted kernel answers again
    assert any("longer than 5 s" in n for n in graded.reports["endless_loop"].notes)
    assert any("MemoryError" in n for n in graded.reports["huge_allocation"].notes)
    assert "not a readable notebook" in _messages(graded, "broken_file")["test_unbroadcast"]


def test_patching_and_dynamic_lookups_are_flagged_for_review(graded) -> None:
    flagged = lambda name: " ".join(n for n in graded.reports[name].notes  # noqa: E731
                                    if n.startswith("review:"))
    assert "numpy.random.default_rng" in flagged("patch_numpy")
    assert "mlsys.tensor.Tensor.backward" in flagged("patch_engine") or \
        "Tensor.backward" in flagged("patch_engine")
    assert "getattr with a computed name" in flagged("split_names")
    assert "sys._getframe" in flagged("peek")
    assert flagged("reference") == flagged("part1_only") == flagged("malformed_metadata") == ""


def test_other_files_are_out_of_reach(graded) -> None:
    assert set(graded.digests.values()) == {"unchanged"}  # a later notebook, the lab source
    assert graded.reports["zz_reference"].score == 20


def test_nothing_a_submission_started_outlives_its_grading(graded) -> None:
    time.sleep(0.5)
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if graded.marker.encode() in f.read():
                    alive.append(pid)
        except OSError:
            pass
    assert alive == []
    assert not any("survived" in n for r in graded.reports.values() for n in r.notes)


def test_the_gradebook_holds_the_graders_scores_only(graded) -> None:
    with open(graded.tmp / "gradebook" / "gradebook.csv") as f:
        rows = {r["student"]: float(r["score"]) for r in csv.DictReader(f)}
    assert rows == {name: float(score) for name, score in graded.expected.items()}
    assert "bonus" not in (graded.tmp / "gradebook" / "gradebook.csv").read_text()
    assert not (graded.tmp / "gradebook" / "gradebook.partial.json").exists()
    feedback = (graded.tmp / "gradebook" / "feedback" / "part1_only.md").read_text()
    assert "**Score: 10 / 20**" in feedback and "| test_backward | 0 / 6 | failed" in feedback


def test_the_cases_cover_every_attack_class_of_the_issue() -> None:
    sources = {name: value for name, value in vars(redteam_cases).items() if name.isupper()}
    assert {"REBIND_HELPERS", "PATCH_NUMPY", "MUTATE_REGISTRY", "PEEK", "CHANGING_VALUES",
            "SNOOP", "SPLIT_NAMES", "OVERWRITE", "DETACHED", "LIBRARY_VJPS",
            "LIBRARY_BACKWARD"} <= set(sources)
    assert "threading.Thread" in sources["PEEK"] and "_getframe" in sources["PEEK"]
