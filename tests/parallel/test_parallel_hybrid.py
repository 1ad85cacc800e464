"""Hybrid 2x2 layouts on 4 processes with sub-groups, and the sub-groups themselves.

DP x TP: two tensor-parallel replicas of the GPT average their gradients with DDP over the
data-parallel sub-group; PP x DP: two 2-stage pipelines average theirs after the flush. Both equal
one process on the whole batch (float64, 1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_parallel_tensor import CONFIG, Slicer, dense_gpt

import mlsys
from mlsys.comm import DistributedDataParallel, MismatchError, WorkerError, launch
from mlsys.comm.executor import execute
from mlsys.comm.schedules import hierarchical_ring
from mlsys.parallel.gpt import gpt_loss, markov_tokens, tensor_parallel
from mlsys.parallel.layout import average_gradients, layout
from mlsys.parallel.pipeline import Pipeline

BATCH = 8


def _dense() -> tuple[float, mlsys.parallel.gpt.GPT]:
    model = dense_gpt()
    loss = model.loss(*markov_tokens(BATCH, CONFIG))
    loss.backward()
    for p in model.parameters():
        p.data = p.grad.data
    return float(loss.item()), model


def _half(d: int) -> tuple:
    x, y = markov_tokens(BATCH, CONFIG)
    half = BATCH // 2
    return x[d * half:(d + 1) * half], y[d * half:(d + 1) * half]


def _dp_tp(group) -> tuple:  # noqa: ANN001
    grid = layout(group, tp=2, dp=2)
    model = tensor_parallel(dense_gpt(), grid.tp)
    ddp = DistributedDataParallel(model, grid.dp, overlap=False)
    x, y = _half(grid.dp.rank)
    model.criterion(ddp(x), y).backward()
    return grid.coordinates, {n: p.grad.data.copy() for n, p in model.named_parameters()}


def test_data_times_tensor_parallel_equals_one_process() -> None:
    ranks = launch(_dp_tp, 4)
    assert [coordinates for coordinates, _ in ranks] == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)]
    for (t, _, _), grads in ranks:
        expected = dict(tensor_parallel(_dense()[1], Slicer(t, 2)).named_parameters())
        for name, g in grads.items():
            np.testing.assert_allclose(g, expected[name].data, rtol=1e-10, atol=1e-12, err_msg=name)


def _pp_dp(group) -> tuple:  # noqa: ANN001
    grid = layout(group, dp=2, pp=2)
    model = dense_gpt()
    names = {id(p): n for n, p in model.named_parameters()}
    pipe = Pipeline(model.layers(), grid.pp, "1f1b", 2, loss_fn=gpt_loss)
    report = pipe.step(*_half(grid.dp.rank))
    average_gradients(pipe.parameters(), grid.dp)
    losses = grid.dp.all_gather(np.array([report.loss or 0.0]))
    return grid.coordinates, float(losses.mean()), {names[id(p)]: p.grad.data.copy()
                                                    for p in pipe.parameters()}


def test_pipeline_times_data_parallel_equals_one_process() -> None:
    loss, dense = _dense()
    ranks = launch(_pp_dp, 4)
    assert [c for c, *_ in ranks] == [(0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)]
    for (_, _, stage), mean_loss, grads in ranks:
        if stage == 1:
            assert mean_loss == pytest.approx(loss, rel=1e-12)
        for name, g in grads.items():
            np.testing.assert_allclose(g, dict(dense.named_parameters())[name].data, rtol=1e-10,
                                       atol=1e-12, err_msg=name)


def _subgroups(group) -> str:  # noqa: ANN001
    r = group.rank
    pair = group.subgroup([r - r % 2, r - r % 2 + 1])
    across = group.subgroup([r % 2 + 2, r % 2])  # order given: renumbered
    assert (pair.rank, pair.world_size, across.rank) == (r % 2, 2, 1 - r // 2)
    assert pair.all_reduce(np.array([float(r)]))[0] == 2 * (r - r % 2) + 1
    np.testing.assert_array_equal(across.all_gather(np.array([r])).ravel(), [r % 2 + 2, r % 2])
    if pair.rank == 0:
        pair.send(np.arange(3.0) + r, 1)
    else:
        np.testing.assert_array_equal(pair.recv(0), np.arange(3.0) + r - 1)
    across.barrier()
    # the hierarchical ring, defined once in mlsys, on real processes: 2 "nodes" of 2
    data = np.arange(10.0) * (r + 1)
    execute(hierarchical_ring(2, 2, 10), group.transport, data)
    np.testing.assert_array_equal(data, np.arange(10.0) * 10)
    with pytest.raises(ValueError, match=r"rank \d is not in \[5\]|ranks in \[0, 4\)"):
        group.subgroup([5])
    with pytest.raises(ValueError, match="ranks must be distinct"):
        group.subgroup([r, r])
    with pytest.raises(ValueError, match=r"tp\*dp\*pp = 3\*1\*1 = 3 must equal the group's 4"):
        layout(group, tp=3)
    return "ok"


def test_subgroups_renumber_ranks_and_share_the_transport() -> None:
    assert launch(_subgroups, 4) == ["ok"] * 4


def _mismatch(group) -> None:  # noqa: ANN001
    pair = group.subgroup([0, 1])
    if group.rank == 0:
        pair.all_reduce(np.zeros(3))
    else:
        pair.broadcast(np.zeros(3))


def test_mismatched_calls_in_a_subgroup_are_named() -> None:
    # whichever rank notices first names both calls
    with pytest.raises(WorkerError, match=r"MismatchError: .*(all_reduce.* but rank 1 called broadcast"
                                          r"|broadcast.* but rank 0 called all_reduce)"):
        launch(_mismatch, 2)
    assert issubclass(MismatchError, ValueError)
