"""Parameter server: BSP, SSP and ASP bound staleness and trade it for throughput."""

from __future__ import annotations

import pytest

from simulators.training import ParameterServerConfig, simulate_parameter_server


def run(**kw):
    return simulate_parameter_server(ParameterServerConfig(**kw))


def test_single_worker_closed_form() -> None:
    cfg = ParameterServerConfig(workers=1, jitter=0.0, duration=1.0, compute_time=0.1)
    transfer = cfg.latency + cfg.model_bytes / cfg.bandwidth
    r = simulate_parameter_server(cfg)
    assert r.updates == int(1.0 // (0.1 + 2 * transfer))


def test_staleness_bounds_and_straggler_throughput() -> None:
    bsp, ssp, asp = (run(mode=m, staleness=2, stragglers=1) for m in ("bsp", "ssp", "asp"))
    assert max(bsp.staleness) == 0
    assert max(ssp.staleness) <= 2
    assert max(asp.staleness) > 2
    assert bsp.updates < ssp.updates < asp.updates
    assert bsp.wait_time > ssp.wait_time > asp.wait_time == 0


def test_bsp_period_closed_form() -> None:
    """Identical workers pull together, so the shared link serializes W pulls: each iteration
    lasts c + (W+1)x (the last pull, compute, the last push); ASP hides the queueing."""
    cfg = ParameterServerConfig(workers=4, mode="bsp", jitter=0.0)
    x = cfg.latency + cfg.model_bytes / cfg.bandwidth
    period = cfg.compute_time + (cfg.workers + 1) * x
    assert simulate_parameter_server(cfg).updates == cfg.workers * int(cfg.duration // period)
    assert run(mode="asp", jitter=0.0).updates > simulate_parameter_server(cfg).updates


def test_deterministic_and_validated() -> None:
    assert run(seed=3, jitter=0.3).staleness == run(seed=3, jitter=0.3).staleness
    with pytest.raises(ValueError, match="mode must be one of"):
        run(mode="async")
    with pytest.raises(ValueError, match="stragglers must be in"):
        run(workers=2, stragglers=3)
