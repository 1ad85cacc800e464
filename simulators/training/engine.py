"""Predict the real engine's data-parallel step with the simulator, and measure it.

Each rank of an ``mlsys.comm`` group (real OS processes on this machine) measures the parts the
simulator needs: the local forward and backward (and when each parameter's gradient becomes
ready, from the same post-accumulate hooks DDP uses) and one all-reduce of every DDP bucket. The
simulator composes them with :func:`simulators.training.data_parallel.sync_gradients`, exactly as
it does for a modelled GPU cluster, and the real :class:`~mlsys.comm.ddp.DistributedDataParallel`
step is timed in the same rounds, so load from other processes lands on both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

import mlsys
from mlsys.comm import launch
from mlsys.comm.ddp import DEFAULT_BUCKET_BYTES, DistributedDataParallel, flatten, unflatten_into
from mlsys.nn import functional as F

from .data_parallel import sync_gradients

__all__ = ["EngineDDP", "predict_engine_ddp"]


@dataclass(frozen=True)
class EngineDDP:
    """Median seconds per step: measured with DDP, predicted from its measured parts."""

    world_size: int
    overlap: bool
    measured: float
    predicted: float
    compute: float

    @property
    def error(self) -> float:
        """Relative error of the prediction (positive: the simulator is slower than reality)."""
        return self.predicted / self.measured - 1


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _reduce(group, bucket: list) -> None:  # noqa: ANN001
    """What DDP does with one ready bucket: flatten its gradients, average them, copy them back."""
    grads = [p.grad.data for p in bucket]
    flat = flatten(grads)
    group.all_reduce(flat, op="mean")
    unflatten_into(flat, grads)


def _rank(group, hidden: int, depth: int, batch: int, rounds: int, overlap: bool,  # noqa: ANN001
          bucket_bytes: int) -> dict:
    mlsys.manual_seed(0)
    model = mlsys.models.mlp(hidden=hidden, depth=depth)
    ddp = DistributedDataParallel(model, group, bucket_bytes=bucket_bytes, overlap=overlap)
    rng = np.random.default_rng(group.rank)
    x = mlsys.tensor(rng.standard_normal((batch, 64)).astype(np.float32))
    y = mlsys.tensor(rng.integers(0, 10, batch))
    ready: dict[int, float] = {}
    start = [0.0]
    probes = [p.register_post_accumulate_grad_hook(
        lambda t: ready.__setitem__(id(t), time.perf_counter() - start[0])) for p in model.parameters()]

    def local() -> None:  # forward and backward alone, noting when each gradient is ready
        model.zero_grad()
        start[0] = time.perf_counter()
        with ddp.no_sync():
            F.cross_entropy(ddp(x), y).backward()

    def step() -> None:
        model.zero_grad()
        F.cross_entropy(ddp(x), y).backward()

    compute, comm, real, readiness = [], [[] for _ in ddp.buckets], [], []
    for _ in range(rounds + 1):  # the first round warms up
        group.barrier()
        compute.append(_timed(local))
        readiness.append([max(ready[id(p)] for p in bucket) for bucket in ddp.buckets])
        for k, bucket in enumerate(ddp.buckets):
            group.barrier()
            comm[k].append(_timed(lambda bucket=bucket: _reduce(group, bucket)))
        group.barrier()
        real.append(_timed(step))
    for handle in probes:
        handle.remove()
    ddp.close()
    return {"compute": compute[1:], "ready": readiness[1:], "comm": [c[1:] for c in comm],
            "real": real[1:], "bytes": [sum(p.data.nbytes for p in b) for b in ddp.buckets]}


def _predict_round(ranks: list[dict], k: int, bucket_seconds: list[float], overlap: bool) -> float:
    """Round ``k``'s step as the simulator sees it: each bucket is ready when the slowest rank's
    gradients are, and its all-reduce takes its measured time, one bucket after another."""
    ready = np.max([r["ready"][k] for r in ranks], axis=0)
    pending = iter(bucket_seconds)  # sync_gradients asks for the buckets in the order given
    # bucket_bytes=1 keeps DDP's buckets apart: one entry each, in the order DDP sends them
    synced = sync_gradients([(float(t), n) for t, n in zip(ready, ranks[0]["bytes"])],
                            lambda nbytes: next(pending), bucket_bytes=1, overlap=overlap)
    return max(max(r["compute"][k] for r in ranks), synced)


def predict_engine_ddp(world_size: int = 2, *, hidden: int = 256, depth: int = 2, batch: int = 64,
                       rounds: int = 15, overlap: bool = False,
                       bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> EngineDDP:
    """Train-step the ``mlsys.models.mlp`` with DDP on ``world_size`` processes: measured vs
    predicted median step time (each rank uses one BLAS thread, as a core of its own)."""
    if world_size < 2:
        raise ValueError(f"predict_engine_ddp: world_size must be at least 2, got {world_size}")
    if rounds < 1:
        raise ValueError(f"predict_engine_ddp: rounds must be at least 1, got {rounds}")
    with threadpool_limits(1):
        ranks = launch(_rank, world_size, hidden, depth, batch, rounds, overlap, bucket_bytes)
    slowest = lambda key: np.max([r[key] for r in ranks], axis=0)  # a step ends with its slowest rank
    bucket_seconds = list(np.median(slowest("comm"), axis=1))
    predicted = float(np.median([_predict_round(ranks, k, bucket_seconds, overlap)
                                 for k in range(rounds)]))
    return EngineDDP(world_size, overlap, float(np.median(slowest("real"))), predicted,
                     float(np.median(slowest("compute"))))
