"""The hardware catalog: every number has a source; lookups fail clearly."""

from __future__ import annotations

import pytest

from simulators.core.hardware import GPUS, INTERCONNECTS, gpu, interconnect


def test_every_entry_has_a_source_and_sane_numbers() -> None:
    for g in GPUS.values():
        assert g.source and g.memory >= 16e9 and g.memory_bandwidth >= 300e9
        assert g.peak("fp16") > g.peak("fp32") > 0
    for link in INTERCONNECTS.values():
        assert link.source and 1e9 < link.bandwidth < 1e12 and 0 < link.latency < 1e-4
    assert gpu("a100").peak("bf16") == 312e12
    assert gpu("H200").memory == 141e9 and gpu("H200").peak("bf16") == gpu("H100").peak("bf16")


def test_alpha_beta_time_and_errors() -> None:
    ib = interconnect("ib-hdr")
    assert ib.time(25e9) == pytest.approx(1.0 + ib.latency)
    with pytest.raises(ValueError, match="unknown GPU 'B300'"):
        gpu("B300")
    with pytest.raises(ValueError, match="no peak for dtype 'fp8'"):
        gpu("A100").peak("fp8")
    with pytest.raises(ValueError, match="unknown interconnect"):
        interconnect("carrier-pigeon")
