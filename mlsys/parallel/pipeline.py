"""Pipeline parallelism on real processes, driven by the shared schedule objects.

Each rank of a group is one pipeline *device*; a model given as consecutive layers is cut into
``p * v`` chunks and device ``d`` keeps chunks ``d, d + p, ...`` (:mod:`mlsys.parallel.schedules`).
:meth:`Pipeline.step` runs this device's slots of a :data:`PipelineSchedule` in order: a forward
slot receives its input from the previous chunk's device (point-to-point), runs the chunk and
sends the output on; the last chunk computes the micro-batch's loss. A backward slot receives the
output's gradient from the next chunk's device, runs the tape backward from the saved output and
sends the input's gradient back. Gradients accumulate over the micro-batches in ``.grad``, so an
optimizer steps each device's own parameters afterwards, as on one process.

Sends are non-blocking and progress while the device waits for its next input, so no exchange
can deadlock on the transport's bounded buffers; every message carries its slot as a tag and a
device takes the one it needs (keeping any other that arrived first), so a schedule whose
devices consume messages in another order than they were sent runs correctly, and a message that
is never consumed is an error at the end of the step.

Each step measures what the schedule predicts: when every slot ran (one clock for all processes
of the machine), hence the bubble, and the activation sets (and their bytes, counted from the
arrays the tape keeps) alive at once on each device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..comm.group import ProcessGroup
from ..comm.transport import Request, make_meta, parse_meta
from ..nn.module import Module, Parameter
from ..tensor import Tensor
from .schedules import PipelineSchedule, Slot, build, num_chunks

__all__ = ["Pipeline", "PipelineStep", "SlotTiming", "split_layers", "saved_bytes"]

Loss = Callable[[Tensor, Tensor], Tensor]


def split_layers(layers: Sequence[Module], chunks: int) -> list[list[Module]]:
    """``layers`` cut into ``chunks`` consecutive groups of near-equal count (earlier ones larger)."""
    if not isinstance(chunks, int) or not 1 <= chunks <= len(layers):
        raise ValueError(f"split_layers: cannot cut {len(layers)} layers into {chunks!r} chunks "
                         f"(expected 1 to {len(layers)})")
    base, extra = divmod(len(layers), chunks)
    out, start = [], 0
    for c in range(chunks):
        stop = start + base + (1 if c < extra else 0)
        out.append(list(layers[start:stop]))
        start = stop
    return out


class Chunk(Module):
    """Consecutive layers run one after another (one pipeline chunk)."""

    def __init__(self, layers: Sequence[Module]) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.children():
            x = layer(x)
        return x


def _owner_array(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def saved_bytes(output: Tensor, stop: Tensor | None = None) -> int:
    """Bytes of the activations the tape keeps to differentiate ``output``: every distinct array
    (views counted once, by the array they view) that a recorded node holds as an input, back to
    ``stop``, parameters excluded."""
    seen: dict[int, int] = {}
    stack, visited = [output], {id(output)}
    while stack:
        t = stack.pop()
        node = t._node
        if node is None or t is stop or not isinstance(node.inputs, tuple):
            continue
        for x in node.inputs:
            if not isinstance(x, Parameter):
                owner = _owner_array(x._data)
                seen[id(owner)] = owner.nbytes
            if id(x) not in visited:
                visited.add(id(x))
                stack.append(x)
    return sum(seen.values())


class _Driving(Request):
    """Waits for ``main`` while moving ``others`` (this device's pending sends) on."""

    def __init__(self, main: Request, others: list[Request]) -> None:
        self.main, self.others = main, others
        self.peer, self.kind = main.peer, main.kind

    def progress(self) -> bool:
        moved = False
        for request in self.others:
            if not request.done:
                moved = request.progress() or moved
        moved = self.main.progress() or moved
        self.done = self.main.done
        return moved


class _Messages:
    """Tagged point-to-point messages between the devices of one pipeline."""

    def __init__(self, group: ProcessGroup) -> None:
        self.transport = group.transport
        self.sends: list[Request] = []
        self.early: dict[tuple[int, str], np.ndarray] = {}

    def send(self, array: np.ndarray, dst: int, tag: str) -> None:
        request = self.transport.isend(dst, np.ascontiguousarray(array), make_meta(tag, array))
        request.progress()
        self.sends = [r for r in self.sends if not r.done] + ([] if request.done else [request])

    def recv(self, src: int, tag: str) -> np.ndarray:
        while (src, tag) not in self.early:
            request = self.transport.irecv(src)
            self.transport.wait_all([_Driving(request, self.sends)])
            self.early[(src, parse_meta(request.meta)[0])] = request.result
        return self.early.pop((src, tag))

    def finish(self) -> None:
        self.transport.wait_all(self.sends)
        self.sends = []
        if self.early:
            raise RuntimeError(f"pipeline: messages arrived that no slot used: "
                               f"{sorted(tag for _, tag in self.early)}")


@dataclass(frozen=True)
class SlotTiming:
    """When one slot computed on this device (seconds on the machine's monotonic clock)."""

    slot: Slot
    start: float
    end: float


@dataclass
class PipelineStep:
    """What one device measured in one step."""

    device: int
    loss: float | None  # the mean micro-batch loss (on the device holding the last chunk)
    start: float
    end: float
    slots: list[SlotTiming] = field(default_factory=list)
    peak_sets: int = 0  # most activation sets alive at once
    peak_bytes: int = 0  # most activation bytes alive at once
    set_bytes: dict[int, int] = field(default_factory=dict)  # chunk -> bytes of one set

    @property
    def busy(self) -> float:
        return sum(t.end - t.start for t in self.slots)


def _tag(slot: Slot) -> str:
    return f"pp:{slot.phase}{slot.chunk}.{slot.microbatch}"


@dataclass
class _Run:
    """One step's state on one device."""

    messages: _Messages
    report: PipelineStep
    batch: Callable[[Tensor, int], Tensor]  # micro-batch i of a batch
    inputs: Tensor
    targets: Tensor
    saved: dict[tuple[int, int], tuple[Tensor, Tensor]] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    live: int = 0  # activation bytes held now


class Pipeline:
    """This rank's device of a pipeline over ``group``: chunks ``rank, rank + p, ...`` of
    ``layers`` cut into ``p * chunks_per_device`` chunks, run by the schedule ``schedule``
    (``"gpipe"``, ``"1f1b"``, ``"interleaved"``) on ``microbatches`` micro-batches per step.

    Every rank may build the whole model (under one seed, so the layers equal a one-process
    model's); only its own chunks are kept and trained.
    """

    def __init__(self, layers: Sequence[Module], group: ProcessGroup, schedule: str = "1f1b",
                 microbatches: int = 4, chunks_per_device: int = 1, loss_fn: Loss | None = None) -> None:
        p = group.world_size
        if schedule != "interleaved" and chunks_per_device != 1:
            raise ValueError(f"pipeline: chunks_per_device={chunks_per_device} needs the "
                             f"'interleaved' schedule, got {schedule!r}")
        self.group, self.microbatches = group, microbatches
        self.schedule: PipelineSchedule = build(schedule, p, microbatches, chunks_per_device)
        self.total_chunks = num_chunks(self.schedule)
        pieces = split_layers(list(layers), self.total_chunks)
        self.chunks = {c: Chunk(pieces[c]) for c in range(group.rank, self.total_chunks, p)}
        self.loss_fn = loss_fn

    def parameters(self) -> list[Parameter]:
        """The parameters of this device's chunks (what its optimizer steps)."""
        return [q for c in sorted(self.chunks) for q in self.chunks[c].parameters()]

    def zero_grad(self) -> None:
        for q in self.parameters():
            q.grad = None

    def _device(self, chunk: int) -> int:
        return chunk % self.group.world_size

    def step(self, inputs: Tensor, targets: Tensor) -> PipelineStep:
        """Forward and backward over the batch cut into micro-batches; gradients (of the mean
        micro-batch loss) accumulate in this device's parameters' ``.grad``."""
        m = self.microbatches
        if inputs.shape[0] % m:
            raise ValueError(f"pipeline: a batch of {inputs.shape[0]} does not split into "
                             f"{m} equal micro-batches")
        if self.loss_fn is None and self.total_chunks - 1 in self.chunks:
            raise ValueError("pipeline: the device holding the last chunk needs a loss_fn")
        size = inputs.shape[0] // m
        run = _Run(_Messages(self.group), PipelineStep(self.group.rank, None, 0.0, 0.0),
                   lambda t, i: t[i * size: (i + 1) * size], inputs, targets)
        self.group.barrier()
        run.report.start = time.perf_counter()
        for slot in self.schedule[self.group.rank]:
            t0, t1 = (self._forward if slot.phase == "F" else self._backward)(slot, run)
            run.report.slots.append(SlotTiming(slot, t0, t1))
        run.messages.finish()
        run.report.end = time.perf_counter()
        run.report.loss = float(np.mean(run.losses)) if run.losses else None
        return run.report

    def _forward(self, slot: Slot, run: _Run) -> tuple[float, float]:
        c, i, last = slot.chunk, slot.microbatch, self.total_chunks - 1
        source = (run.batch(run.inputs, i) if c == 0 else Tensor(
            run.messages.recv(self._device(c - 1), _tag(Slot(c - 1, i, "F"))), requires_grad=True))
        t0 = time.perf_counter()
        out = self.chunks[c](source)
        if c == last:
            loss = self.loss_fn(out, run.batch(run.targets, i))
            run.losses.append(float(loss.item()))
            out = loss * (1.0 / self.microbatches)
        t1 = time.perf_counter()
        if c < last:
            run.messages.send(out.data, self._device(c + 1), _tag(slot))
        report = run.report
        if c not in report.set_bytes:  # equal micro-batches: equal sets, counted once
            report.set_bytes[c] = saved_bytes(out, source)
        run.saved[c, i] = (source, out)
        run.live += report.set_bytes[c]
        report.peak_bytes = max(report.peak_bytes, run.live)
        report.peak_sets = max(report.peak_sets, len(run.saved))
        return t0, t1

    def _backward(self, slot: Slot, run: _Run) -> tuple[float, float]:
        c, i = slot.chunk, slot.microbatch
        source, out = run.saved.pop((c, i))
        grad = None if c == self.total_chunks - 1 else Tensor(
            run.messages.recv(self._device(c + 1), _tag(Slot(c + 1, i, "B"))))
        t0 = time.perf_counter()
        if out.requires_grad:  # (a first chunk without parameters has nothing to do)
            out.backward(grad)
        t1 = time.perf_counter()
        run.live -= run.report.set_bytes[c]
        if c > 0:
            run.messages.send(source.grad.data, self._device(c - 1), _tag(slot))
        return t0, t1
