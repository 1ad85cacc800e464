"""The parameter-server simulator with several servers, given iteration times, fixed iterations."""

from __future__ import annotations

import pytest

from simulators.training import ParameterServerConfig, simulate_parameter_server


def test_servers_split_each_transfer_over_their_own_links() -> None:
    for servers in (1, 2, 4):
        cfg = ParameterServerConfig(workers=1, servers=servers, iterations=10, jitter=0.0,
                                    compute_time=0.01, model_bytes=1e8, bandwidth=1e9, latency=0.0)
        r = simulate_parameter_server(cfg)
        assert r.makespan == pytest.approx(10 * (0.01 + 2 * 0.1 / servers))
        assert r.updates == 10


def test_given_iteration_times_set_the_pace_of_bsp() -> None:
    cfg = ParameterServerConfig(workers=2, mode="bsp", iterations=5, model_bytes=1.0,
                                bandwidth=1e12, latency=0.0, iteration_times=((0.1,), (0.3, 0.2)))
    r = simulate_parameter_server(cfg)
    assert r.makespan == pytest.approx(0.3 + 0.2 + 0.3 + 0.2 + 0.3)  # the slower worker's times
    assert set(r.staleness) == {0}
    asp = simulate_parameter_server(ParameterServerConfig(
        workers=2, mode="asp", iterations=5, model_bytes=1.0, bandwidth=1e12, latency=0.0,
        iteration_times=((0.1,), (0.3, 0.2))))
    assert asp.makespan == pytest.approx(1.3) and max(asp.staleness) == 3  # k=4 at 0.4 s


def test_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match="servers must be a positive integer, got 0"):
        ParameterServerConfig(servers=0)
    with pytest.raises(ValueError, match="iteration_times must give .* each of the 4 workers"):
        ParameterServerConfig(iteration_times=((0.1,),))
    with pytest.raises(ValueError, match="iterations must be None or a positive integer, got 0"):
        ParameterServerConfig(iterations=0)
