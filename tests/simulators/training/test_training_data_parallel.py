"""Bucketed gradient all-reduce, with and without overlap, against closed forms."""

from __future__ import annotations

import pytest

from simulators.core import Recorder
from simulators.core.hardware import interconnect
from simulators.training.costs import allreduce_time, half_ring_time
from simulators.training.data_parallel import buckets, sync_gradients

GRADS = [(0.1 * (i + 1), 10e6) for i in range(10)]  # one 10 MB layer gradient every 0.1 s


def test_ring_allreduce_closed_form() -> None:
    link = interconnect("ib-hdr")
    n, size = 8, 1e9
    expected = 2 * (n - 1) * (link.latency + size / n / link.bandwidth)
    assert allreduce_time(size, n, link) == pytest.approx(expected)
    assert half_ring_time(size, n, link) * 2 == pytest.approx(allreduce_time(size, n, link))
    assert allreduce_time(size, 1, link) == 0.0


def test_buckets() -> None:
    plan = buckets(GRADS, 25e6)  # at most 25 MB each: the engine's DDP rule
    assert [n for _, n in plan] == [20e6] * 5
    assert [t for t, _ in plan] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert buckets(GRADS, 1e12) == [(1.0, 100e6)]
    assert buckets(GRADS, 1.0) == GRADS  # a gradient larger than the cap is a bucket alone
    with pytest.raises(ValueError, match="bucket_bytes must be a positive number of bytes"):
        buckets(GRADS, 0)


def test_without_overlap_all_reduces_follow_backward() -> None:
    cost = lambda n: n / 1e9
    end = sync_gradients(GRADS, cost, bucket_bytes=25e6, overlap=False)
    assert end == pytest.approx(1.0 + 100e6 / 1e9)


def test_overlap_hides_all_but_the_last_bucket() -> None:
    cost = lambda n: n / 1e9  # 20 ms per 20 MB bucket, shorter than the 0.2 s between buckets
    rec = Recorder()
    end = sync_gradients(GRADS, cost, bucket_bytes=25e6, overlap=True, recorder=rec)
    assert end == pytest.approx(1.0 + 20e6 / 1e9)
    assert len(rec) == 5 and rec.events[0].start == pytest.approx(0.2)


def test_slow_network_queues_buckets() -> None:
    cost = lambda n: n / 1e8  # 0.2 s per bucket: the stream is busy back to back
    end = sync_gradients(GRADS, cost, bucket_bytes=25e6, overlap=True)
    assert end == pytest.approx(0.2 + 100e6 / 1e8)
