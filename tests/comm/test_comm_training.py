"""Data-parallel training and the parameter server on real processes, against one process."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mlsys
from mlsys import models, optim
from mlsys.comm import launch
from mlsys.comm.ddp import DistributedDataParallel, flatten, make_buckets, unflatten_into
from mlsys.comm.ps import parameter_server
from mlsys.data import DataLoader, TensorDataset, load_digits
from mlsys.nn import functional as F
from mlsys.training import evaluate

EPOCHS, BATCH, LR = 4, 64, 0.1
PS_EPOCHS, PS_LR = 6, 0.3
TRAIN, TEST = load_digits("train"), load_digits("test")


def _loader(rank: int, world: int, seed: int = 0) -> DataLoader:
    x, y = TRAIN.arrays
    return DataLoader(TensorDataset(x[rank::world], y[rank::world]), batch_size=BATCH // world,
                      shuffle=True, seed=seed, drop_last=True)


def _train(model: mlsys.nn.Module, loader: DataLoader) -> float:
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    for _ in range(EPOCHS):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return evaluate(getattr(model, "module", model), DataLoader(TEST, 512))


def _ddp_gradients(group, x: np.ndarray, y: np.ndarray) -> list:  # noqa: ANN001
    """Per mode, this rank's gradients after one backward on its shard of the global batch."""
    p, r = group.world_size, group.rank
    out = []
    for overlap in (True, False):
        mlsys.manual_seed(100 + r)  # different replicas: DDP must broadcast rank 0's parameters
        model = DistributedDataParallel(models.mlp(hidden=32), group, bucket_bytes=2048,
                                        overlap=overlap)
        loss = F.cross_entropy(model(mlsys.tensor(x[r::p])), mlsys.tensor(y[r::p]))
        loss.backward()
        out.append(([p_.grad.data.copy() for p_ in model.parameters()], model.reduced_buckets))
        model.close()
    accuracy = _train(DistributedDataParallel(models.mlp(), group), _loader(r, p))
    return [out, accuracy]


def test_ddp_gradients_equal_one_process_and_training_matches_it() -> None:
    x, y = TRAIN.arrays[0][:48], TRAIN.arrays[1][:48]  # 48 = 4 ranks x 12 (an equal split)
    results = launch(_ddp_gradients, 4, x, y, timeout=60)
    mlsys.manual_seed(100)
    reference = models.mlp(hidden=32)
    F.cross_entropy(reference(mlsys.tensor(x)), mlsys.tensor(y)).backward()
    expected = [p.grad.data for p in reference.parameters()]
    buckets = len(make_buckets(list(reference.parameters()), 2048))
    assert buckets > 2
    for modes, _ in results:
        for grads, reduced in modes:
            assert reduced == buckets
            for got, want in zip(grads, expected):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    with threadpool_limits(1):
        mlsys.manual_seed(0)
        single = _train(models.mlp(), _loader(0, 1))
    accuracies = {acc for _, acc in results}
    assert len(accuracies) == 1  # every replica holds the same model
    assert accuracies.pop() >= single - 0.03 and single > 0.9


def _ps(group) -> dict:  # noqa: ANN001
    """Sync, async and stale-synchronous (bound 0) training; the server's accuracy and stats.

    Plain SGD: asynchrony already acts like extra momentum (Mitliagkas et al., "Asynchrony
    begets momentum", 2016), and with explicit momentum on top the async runs vary a lot.
    """
    found = {}
    for mode, staleness in (("sync", None), ("async", None), ("async", 0)):
        mlsys.manual_seed(0)
        model = models.mlp()
        if group.rank == 0:
            opt = optim.SGD(model.parameters(), lr=PS_LR)
            stats = parameter_server(group, model, opt, mode=mode, staleness=staleness)
            found[(mode, staleness)] = (evaluate(model, DataLoader(TEST, 512)), stats)
        else:
            w, workers = group.rank - 1, group.world_size - 1
            batches = [b for _ in range(PS_EPOCHS) for b in _loader(w, workers, seed=w)]
            parameter_server(group, model, batches=batches, mode=mode, staleness=staleness)
    return found


def test_parameter_server_sync_async_and_bounded_staleness() -> None:
    found = launch(_ps, 3, timeout=60)[0]
    steps = PS_EPOCHS * len(_loader(0, 2))
    accuracy, stats = found[("sync", None)]
    assert stats.updates == steps and set(stats.staleness) == {0} and accuracy > 0.8
    accuracy, stats = found[("async", None)]
    assert stats.updates == 2 * steps and len(stats.staleness) == 2 * steps and accuracy > 0.8
    accuracy, stats = found[("async", 0)]
    assert stats.updates == 2 * steps and max(stats.staleness) <= 1  # lockstep: the other worker
    assert accuracy > 0.8


def test_flatten_round_trips_and_buckets_cover_every_parameter() -> None:
    model = models.mlp()
    params = list(model.parameters())
    flat = flatten([p.data for p in params])
    copies = [np.zeros_like(p.data) for p in params]
    unflatten_into(flat, copies)
    assert all(np.array_equal(a, p.data) for a, p in zip(copies, params))
    buckets = make_buckets(params, 1 << 14)
    assert [p for b in buckets for p in b] == params[::-1]
    assert all(sum(p.data.nbytes for p in b) <= 1 << 14 or len(b) == 1 for b in buckets)
    with pytest.raises(ValueError, match="bucket_bytes must be a positive number of bytes, got 0"):
        make_buckets(params, 0)


def _ps_bad(group) -> str:  # noqa: ANN001
    with pytest.raises(ValueError, match="mode must be one of .*got 'hogwild'"):
        parameter_server(group, models.mlp(), mode="hogwild")
    with pytest.raises(ValueError, match="staleness=2 with mode='sync'"):
        parameter_server(group, models.mlp(), mode="sync", staleness=2)
    return "ok"


def test_parameter_server_rejects_bad_arguments() -> None:
    assert launch(_ps_bad, 2, timeout=10) == ["ok", "ok"]
