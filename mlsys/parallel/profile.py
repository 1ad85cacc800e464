"""Measure parallel training steps on real processes, and the parts a simulator composes them from.

:func:`profile_step` runs a strategy's training step on ``world_size`` processes for a few
rounds and, in the same rounds (so load from other programs lands on both), measures its parts:

* the **compute alone**: the same step on a second copy of the model whose group is
  :class:`Silent` (collectives return at once, with the right shapes: each rank does exactly its
  own arithmetic, no communication and no waiting for other ranks);
* every **collective** the step makes, noted by :class:`Recording` around the real group and
  replayed one at a time on fresh arrays of the same shape.

:func:`profile_pipeline` does the same for a pipeline: each slot's compute comes from the real
step's own slot timings, and a point-to-point transfer of one activation is timed alone.
``simulators.training.engine_parallel`` predicts the measured step from these parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..comm.group import ProcessGroup
from ..comm.launcher import launch
from ..comm.schedules import chunk_ranges
from ..tensor import Tensor
from .pipeline import Pipeline

__all__ = ["Silent", "Recording", "Call", "StepProfile", "profile_step", "PipelineProfile",
           "profile_pipeline"]


def _array(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else x


class Silent:
    """A stand-in for rank ``rank`` of a group that never communicates: every collective returns
    at once with the shape the real one would have (values are this rank's alone)."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def all_reduce(self, x: Any, op: str = "sum", algorithm: str = "auto") -> Any:
        return x

    def broadcast(self, x: Any, root: int = 0, algorithm: str = "binary_tree") -> Any:
        return x

    def all_gather(self, x: Any, algorithm: str = "ring") -> np.ndarray:
        a = _array(x)
        return np.broadcast_to(a, (self.world_size, *a.shape)).copy()

    def reduce_scatter(self, x: Any, op: str = "sum", algorithm: str = "ring") -> np.ndarray:
        flat = _array(x).reshape(-1)
        start, stop = chunk_ranges(flat.size, self.world_size)[self.rank]
        return flat[start:stop].copy()

    def barrier(self) -> None:
        pass

    def subgroup(self, ranks: list[int]) -> Silent:
        return Silent(list(ranks).index(self.rank), len(ranks))


@dataclass(frozen=True)
class Call:
    """One collective a step made: which, on what shape and dtype, with which reduce op."""

    collective: str
    shape: tuple[int, ...]
    dtype: str
    op: str | None = None
    group: int = 0  # which group of the step (0: the whole group, then its sub-groups in order)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def run(self, group: ProcessGroup) -> float:
        """Seconds this collective takes alone on ``group`` (all ranks call it together)."""
        x = np.ones(self.shape, self.dtype)
        group.barrier()
        start = time.perf_counter()
        if self.collective in ("all_reduce", "reduce_scatter"):
            getattr(group, self.collective)(x, op=self.op)
        else:
            getattr(group, self.collective)(x)
        return time.perf_counter() - start


class Recording:
    """A process group that notes every collective made through it (and then makes it); its
    sub-groups note theirs in the same list."""

    def __init__(self, group: ProcessGroup, calls: list | None = None,
                 groups: list | None = None) -> None:
        self.group = group
        self.calls: list[Call] = [] if calls is None else calls
        self.groups: list[ProcessGroup] = [] if groups is None else groups
        self.index = len(self.groups)
        self.groups.append(group)

    def __getattr__(self, name: str) -> Any:  # rank, world_size, send, recv, barrier, ...
        return getattr(self.group, name)

    def subgroup(self, ranks: list[int]) -> Recording:
        return Recording(self.group.subgroup(ranks), self.calls, self.groups)

    def _note(self, collective: str, x: Any, op: str | None = None) -> None:
        a = _array(x)
        self.calls.append(Call(collective, tuple(a.shape), a.dtype.str, op, self.index))

    def all_reduce(self, x: Any, op: str = "sum", algorithm: str = "auto") -> Any:
        self._note("all_reduce", x, op)
        return self.group.all_reduce(x, op, algorithm)

    def broadcast(self, x: Any, root: int = 0, algorithm: str = "binary_tree") -> Any:
        self._note("broadcast", x)
        return self.group.broadcast(x, root, algorithm)

    def all_gather(self, x: Any, algorithm: str = "ring") -> np.ndarray:
        self._note("all_gather", x)
        return self.group.all_gather(x, algorithm)

    def reduce_scatter(self, x: Any, op: str = "sum", algorithm: str = "ring") -> np.ndarray:
        self._note("reduce_scatter", x, op)
        return self.group.reduce_scatter(x, op, algorithm)


Trainer = Callable[[Any], tuple[Callable[[], None], Callable[[], int]]]


@dataclass(frozen=True)
class StepProfile:
    """Medians over rounds of the slowest rank (a step ends when its slowest rank does)."""

    world_size: int
    measured: float  # the real step
    compute: float  # the same step without communication
    calls: list[Call] = field(default_factory=list)  # the collectives of one step, in order
    comm: list[float] = field(default_factory=list)  # each of them alone
    state_bytes: int = 0  # model-state bytes of the most loaded rank


def _step_rank(group: ProcessGroup, make: Trainer, rounds: int) -> dict:
    recording = Recording(group)
    step, state_bytes = make(recording)
    silent_step, _ = make(Silent(group.rank, group.world_size))
    step()
    silent_step()  # warm-up: first-touch allocations, optimizer state
    recording.calls.clear()
    step()
    calls = list(recording.calls)
    real, alone, comm = [], [], []
    for _ in range(rounds):
        group.barrier()
        start = time.perf_counter()
        step()
        real.append(time.perf_counter() - start)
        group.barrier()
        start = time.perf_counter()
        silent_step()
        alone.append(time.perf_counter() - start)
        comm.append([call.run(recording.groups[call.group]) for call in calls])
    return {"real": real, "alone": alone, "comm": comm, "calls": calls, "bytes": state_bytes()}


def profile_step(make: Trainer, world_size: int, rounds: int = 10, timeout: float = 300.0) -> StepProfile:
    """Profile the step ``make(group)`` returns (with a function giving the rank's model-state
    bytes) on ``world_size`` processes; ``make`` is called twice per rank, once with the real
    group (recorded) and once with a :class:`Silent` one, and must build the same thing both
    times."""
    ranks = launch(_step_rank, world_size, make, rounds, timeout=timeout)
    slowest = lambda key: np.max([r[key] for r in ranks], axis=0)  # noqa: E731
    comm = np.median(slowest("comm"), axis=0) if ranks[0]["calls"] else np.zeros(0)
    return StepProfile(world_size, float(np.median(slowest("real"))),
                       float(np.median(slowest("alone"))), ranks[0]["calls"],
                       [float(c) for c in comm], max(r["bytes"] for r in ranks))


@dataclass(frozen=True)
class PipelineProfile:
    """A pipeline step: measured makespan (to the end of the slowest device's optimizer step)
    and bubble, each slot's compute (median per chunk and phase), one activation's transfer
    alone, the slowest optimizer step, and one round's slot timings for a timeline."""

    schedule: str
    world_size: int
    microbatches: int
    chunks_per_device: int
    measured: float
    bubble: float
    slot_seconds: dict[tuple[int, str], float]
    p2p: float
    optimizer: float
    timeline: list[tuple[int, str, int, int, float, float]]  # (device, phase, chunk, mb, t0, t1)
    peak_bytes: list[int]  # per device: the most activation bytes alive at once
    state_bytes: list[int]  # per device: parameters, gradients and optimizer state


def _pipeline_rank(group: ProcessGroup, make: Callable[[], tuple[list, Tensor, Tensor, Callable]],
                   schedule: str, m: int, v: int, rounds: int) -> dict:
    layers, x, y, loss_fn, optimizer = make()
    pipe = Pipeline(layers, group, schedule, m, v, loss_fn=loss_fn)
    opt = optimizer(pipe.parameters())
    reports, finished = [], []
    for _ in range(rounds + 1):
        pipe.zero_grad()
        reports.append(pipe.step(x, y))
        opt.step()
        finished.append(time.perf_counter())
    reports, finished = reports[1:], finished[1:]  # the first warms up
    activation = np.zeros(layers[0](x[: x.shape[0] // m]).shape, np.float32)
    sent, arrived = [], []
    for _ in range(rounds):  # one activation from device 0 to device 1, alone
        group.barrier()
        if group.rank == 0:
            sent.append(time.perf_counter())
            group.send(activation, 1)
        elif group.rank == 1:
            group.recv(0, activation)
            arrived.append(time.perf_counter())
    group.barrier()
    params = pipe.parameters()
    state = sum(q.data.nbytes + q.grad.data.nbytes for q in params)
    state += sum(t.data.nbytes for t in opt.state_tensors() if t.ndim)
    return {"reports": reports, "finished": finished, "sent": sent, "arrived": arrived,
            "state": state}


def profile_pipeline(make: Callable[[], tuple], world_size: int, schedule: str,
                     microbatches: int, chunks_per_device: int = 1, rounds: int = 5,
                     timeout: float = 300.0) -> PipelineProfile:
    """Profile a pipeline step and optimizer step over ``world_size`` processes; ``make()``
    returns the model's layers, a batch (inputs, targets), the loss function and the optimizer's
    factory, the same on every rank."""
    ranks = launch(_pipeline_rank, world_size, make, schedule, microbatches, chunks_per_device,
                   rounds, timeout=timeout)
    spans, bubbles, slots, updates = [], [], {}, []
    for k in range(rounds):
        round_ = [r["reports"][k] for r in ranks]
        start, end = min(s.start for s in round_), max(s.end for s in round_)
        spans.append(max(r["finished"][k] for r in ranks) - start)
        updates.append(max(r["finished"][k] - r["reports"][k].end for r in ranks))
        bubbles.append(1 - sum(s.busy for s in round_) / (world_size * (end - start)))
        for s in round_:
            for t in s.slots:
                slots.setdefault((t.slot.chunk, t.slot.phase), []).append(t.end - t.start)
    last = [r["reports"][-1] for r in ranks]
    origin = min(s.start for s in last)
    timeline = [(s.device, t.slot.phase, t.slot.chunk, t.slot.microbatch, t.start - origin,
                 t.end - origin) for s in last for t in s.slots]
    # one machine, one monotonic clock: arrival on device 1 minus departure from device 0
    p2p = float(np.median(np.array(ranks[1]["arrived"]) - np.array(ranks[0]["sent"])))
    return PipelineProfile(schedule, world_size, microbatches, chunks_per_device,
                           float(np.median(spans)), float(np.median(bubbles)),
                           {k: float(np.median(v)) for k, v in slots.items()}, p2p,
                           float(np.median(updates)), timeline, [s.peak_bytes for s in last],
                           [r["state"] for r in ranks])
