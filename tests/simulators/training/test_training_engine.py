"""The simulator's prediction of the real engine's DDP step: its composition, and a real run."""

from __future__ import annotations

import pytest

from simulators.training.engine import _predict_round, predict_engine_ddp


def _ranks() -> list[dict]:
    # two ranks, one round, two buckets: ready at 3 and 5 ms on the slower rank
    return [{"compute": [0.006], "ready": [[0.003, 0.005]], "bytes": [100, 200]},
            {"compute": [0.007], "ready": [[0.002, 0.006]], "bytes": [100, 200]}]


def test_without_overlap_the_buckets_follow_the_slowest_backward() -> None:
    # all-reduces start when the last gradient anywhere is ready (6 ms), one after another
    assert _predict_round(_ranks(), 0, [0.004, 0.001], overlap=False) == pytest.approx(0.006 + 0.005)


def test_with_overlap_each_bucket_starts_when_it_is_ready_everywhere() -> None:
    # bucket 0 ready at 3 ms runs to 7 ms; bucket 1 (ready at 6 ms) waits for the stream: 8 ms
    assert _predict_round(_ranks(), 0, [0.004, 0.001], overlap=True) == pytest.approx(0.008)
    # communication shorter than the rest of backward hides entirely behind the slowest rank
    assert _predict_round(_ranks(), 0, [0.0005, 0.0005], overlap=True) == pytest.approx(0.007)


def test_a_real_ddp_step_is_measured_and_predicted_on_processes() -> None:
    run = predict_engine_ddp(2, hidden=64, rounds=3)
    assert 0 < run.compute <= run.predicted
    assert run.measured > 0 and run.error == run.predicted / run.measured - 1
    with pytest.raises(ValueError, match="world_size must be at least 2, got 1"):
        predict_engine_ddp(1)
