"""Batching policies and the wire format, without a server."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlsys.serve.policy import (
    Decision,
    MaxSizeMaxWait,
    NoBatching,
    QueueState,
    check_decision,
    dispatch,
    wait,
)
from mlsys.serve.protocol import BadRequest, encode_infer_request, parse_infer_request


def state(now: float, arrivals: list[float], idle: int = 1) -> QueueState:
    return QueueState(now, arrivals, idle, 2)


def test_max_size_max_wait_sends_full_batches_at_once_and_partial_ones_at_the_deadline() -> None:
    policy = MaxSizeMaxWait(4, 0.010)
    assert policy.decide(state(0.0, [0.0] * 5)).size == 4
    early = policy.decide(state(0.004, [0.001, 0.002]))
    assert early.size == 0 and early.wait == pytest.approx(0.007)
    assert policy.decide(state(0.011, [0.001, 0.002])).size == 2
    assert NoBatching().decide(state(5.0, [5.0, 5.0])).size == 1


@pytest.mark.parametrize("args", [(0, 0.001), (2.5, 0.001), (4, -1.0), (4, math.inf), (True, 0.0)])
def test_max_size_max_wait_rejects_bad_settings(args: tuple) -> None:
    with pytest.raises(ValueError, match="MaxSizeMaxWait"):
        MaxSizeMaxWait(*args)


def test_check_decision_names_impossible_decisions() -> None:
    policy = MaxSizeMaxWait(4, 0.0)
    s = state(0.0, [0.0, 0.0])
    assert check_decision(policy, s, dispatch(2)).size == 2
    with pytest.raises(ValueError, match="send 3 requests with 2 waiting"):
        check_decision(policy, s, dispatch(3))
    with pytest.raises(ValueError, match="wait must be positive"):
        check_decision(policy, s, wait(0.0))
    with pytest.raises(TypeError, match="expected a Decision"):
        check_decision(policy, s, 2)
    with pytest.raises(TypeError, match="size=1.5, .*expected a whole number of requests"):
        check_decision(policy, s, Decision(1.5))  # a slice of the queue needs an int


def request(**tensor: object) -> bytes:
    base = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.0, 0.5, 1.0, 0.25]}
    return json.dumps({"inputs": [{**base, **tensor}]}).encode()


def test_parse_round_trips_rows() -> None:
    rows = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(parse_infer_request(encode_infer_request(rows), 4, 8), rows)
    nested = request(shape=[2, 4], data=[[1, 2, 3, 4], [5, 6, 7, 8]])
    assert parse_infer_request(nested, 4, 8).shape == (2, 4)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (json.dumps({"inputs": []}).encode(), "expected a JSON object"),
    (request(datatype="INT64"), "datatype must be 'FP32', got 'INT64'"),
    (request(shape=[1, 5]), r"expected shape \[n, 4\] with 1 <= n <= 8, got \[1, 5\]"),
    (request(shape=[9, 4], data=[0.0] * 36), r"1 <= n <= 8, got \[9, 4\]"),
    (request(shape=[1, 4.0]), "expected shape"),
    (request(data=["a", "b", "c", "d"]), "data must be numbers for FP32, got strings"),
    (request(data=[True, False, True, False]), "got booleans"),
    (request(data=[1.0, None, 2.0, 3.0]), "mixed or null"),
    (request(data=[1.0, 2.0]), r"needs 4 values, got 2"),
    (request(data=[[1.0, 2.0], [3.0]]), "rectangular|mixed"),
    (b'{"inputs": [{"shape": [1, 4], "datatype": "FP32", "data": [NaN, 0, 0, 0]}]}', "finite"),
])
def test_parse_refuses_bad_requests_with_one_line_reasons(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as info:
        parse_infer_request(body, 4, 8)
    assert info.value.status == 400 and "\n" not in info.value.reason
