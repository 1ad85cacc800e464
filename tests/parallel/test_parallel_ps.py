"""The sharded parameter server on real processes: BSP is exact, SSP bounds the staleness.

Under BSP the servers take each round's gradients in worker order, so two servers, one server
and a one-process replay of the same updates end with bitwise the same parameters. With a
straggler, SSP holds the fast worker back so no iteration starts more than ``s`` iterations ahead
of the slowest, while ASP lets it run further ahead.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlsys
from mlsys import models, optim
from mlsys.comm import launch
from mlsys.comm.ddp import flatten, unflatten_into
from mlsys.comm.ps import sharded_parameter_server, staleness_bound, transfer_seconds
from mlsys.data import load_digits
from simulators.training.engine_parallel import predict_parameter_server, real_parameter_server_timeline

LR, STEPS, BATCH = 0.1, 12, 16


def _batches(worker: int) -> list:
    x, y = load_digits("train").arrays
    rng = np.random.default_rng(worker)
    picks = [rng.integers(0, len(y), BATCH) for _ in range(STEPS)]
    return [(mlsys.tensor(x[i]), mlsys.tensor(y[i])) for i in picks]


def _model():  # noqa: ANN202
    mlsys.manual_seed(0)
    return models.mlp(hidden=16)


def _run(group, servers: int, mode: str, staleness: int, delays: list) -> object:  # noqa: ANN001
    worker = group.rank - servers
    return sharded_parameter_server(group, _model(), lambda ps: optim.SGD(ps, lr=LR),
                                    _batches(worker) if worker >= 0 else [], servers=servers,
                                    mode=mode, staleness=staleness, delays=delays)


def _replay(workers: int) -> np.ndarray:
    """BSP by hand: each round, every worker's gradient at the same parameters, applied in turn."""
    model = _model()
    params = list(model.parameters())
    batches = [_batches(w) for w in range(workers)]
    flat = flatten([p.data for p in params])
    for k in range(STEPS):
        unflatten_into(flat, [p.data for p in params])
        grads = []
        for w in range(workers):
            model.zero_grad()
            mlsys.nn.functional.cross_entropy(model(batches[w][k][0]), batches[w][k][1]).backward()
            grads.append(flatten([p.grad.data for p in params]))
        for g in grads:
            flat = flat - np.float32(LR) * g
    return flat


def test_bsp_with_sharded_servers_is_exact() -> None:
    two = launch(_run, 4, 2, "bsp", 0, [])
    one = launch(_run, 3, 1, "bsp", 0, [])
    final = lambda ranks, servers: ranks[servers].snapshots[-1][2]  # noqa: E731
    np.testing.assert_array_equal(final(two, 2), final(one, 1))
    np.testing.assert_array_equal(final(two, 2), _replay(2))
    np.testing.assert_array_equal(np.concatenate([two[0].shard, two[1].shard]), final(two, 2))
    assert [r.updates for r in two[:2]] == [2 * STEPS] * 2
    assert set(two[0].staleness) == {0} and two[0].held == STEPS  # one push per round waits


def test_ssp_bounds_the_staleness_that_asp_lets_grow() -> None:
    slow = [[0.0], [0.02]]  # worker 1 is a straggler
    ssp = launch(_run, 4, 2, "ssp", 1, slow)
    asp = launch(_run, 4, 2, "asp", 0, slow)
    assert max(ssp[0].staleness) == 1 and ssp[0].held > 0
    assert max(asp[0].staleness) > 1 and asp[0].held == 0
    for ranks in (ssp, asp):
        assert all(len(r.losses) == STEPS for r in ranks[2:])
        assert [r.updates for r in ranks[:2]] == [2 * STEPS] * 2


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="mode must be one of .'bsp', 'asp', 'ssp'., got 'sync'"):
        staleness_bound("sync")
    with pytest.raises(ValueError, match="staleness must be a non-negative integer, got -1"):
        staleness_bound("ssp", -1)
    assert staleness_bound("asp") == float("inf") and staleness_bound("ssp", 3) == 3

    def bad(group) -> str:  # noqa: ANN001
        with pytest.raises(ValueError, match=r"servers must be an integer in \[1, 1\]"):
            sharded_parameter_server(group, _model(), optim.SGD, servers=2)
        with pytest.raises(ValueError, match=r"one sequence per worker \(1\), got 2"):
            sharded_parameter_server(group, _model(), optim.SGD, delays=[[0.0], [0.0]])
        return "ok"

    assert launch(bad, 2) == ["ok", "ok"]


def test_a_run_and_its_simulation_draw_alike() -> None:
    workers = launch(_run, 3, 1, "ssp", 1, [[0.0], [0.005]])[1:]
    for report in workers:
        assert len(report.ends) == len(report.compute) == STEPS
        assert all(a <= b <= c <= d <= e for a, b, c, d, e in report.times)
    size = sum(p.data.size for p in _model().parameters())
    prediction, simulated = predict_parameter_server(workers, "ssp", 1, 1, transfer_seconds(size),
                                                     4.0 * size)
    real = real_parameter_server_timeline(workers)
    assert len(real) == 2 * STEPS and prediction.measured == max(w.ends[-1] for w in workers)
    assert {e.resource for e in real.events} == {"worker 0", "worker 1"}
    assert {(e.category, e.group) for e in real.events} <= {(e.category, e.group)
                                                            for e in simulated.recorder.events}
    with pytest.raises(ValueError, match="elements must be a positive integer, got 0"):
        transfer_seconds(0)
