"""Execute a pipeline :data:`~simulators.training.schedules.Schedule` on modelled devices (SimPy).

Each device runs its slots in order; a forward of chunk ``c`` waits for chunk ``c - 1``'s
forward of the same micro-batch to arrive, a backward waits for chunk ``c + 1``'s backward.
Transfers between devices take ``p2p_time`` on a link of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import simpy

from simulators.core import Recorder

from .schedules import Schedule, Slot


@dataclass(frozen=True)
class PipelineRun:
    """Timing of one schedule: when each device finished, how long it computed, the bubble."""

    makespan: float
    device_end: list[float]
    device_busy: list[float]
    slot_end: dict[Slot, float]

    @property
    def bubble_fraction(self) -> float:
        """Mean idle share of the makespan over devices."""
        return 1 - sum(self.device_busy) / (len(self.device_busy) * self.makespan)


def run_pipeline(schedule: Schedule, duration: Callable[[Slot], float], p2p_time: float = 0.0,
                 recorder: Recorder | None = None, start: float = 0.0) -> PipelineRun:
    """Simulate ``schedule``; ``duration(slot)`` gives each slot's compute time in seconds."""
    if p2p_time < 0:
        raise ValueError(f"p2p_time must be >= 0, got {p2p_time}")
    p = len(schedule)
    chunks = 1 + max(slot.chunk for slots in schedule for slot in slots)
    env = simpy.Environment(initial_time=start)
    ready: dict[Slot, simpy.Event] = {}  # the slot's inputs have arrived on its device
    finished: dict[Slot, float] = {}

    def needed(slot: Slot) -> Slot | None:
        if slot.phase == "F":
            return Slot(slot.chunk - 1, slot.microbatch, "F") if slot.chunk > 0 else None
        if slot.chunk < chunks - 1:
            return Slot(slot.chunk + 1, slot.microbatch, "B")
        return Slot(slot.chunk, slot.microbatch, "F")

    def event_for(slot: Slot) -> simpy.Event:
        if slot not in ready:
            ready[slot] = env.event()
        return ready[slot]

    def transfer(src: int, dst: int, slot: Slot, target: simpy.Event):
        t0 = env.now
        yield env.timeout(p2p_time)
        if recorder is not None and p2p_time > 0:
            recorder.record(f"{slot.phase}{slot.microbatch}", f"p2p {src}->{dst}", t0, env.now,
                            category="p2p", group="pipeline")
        target.succeed()

    def device(d: int, slots: list[Slot]):
        for slot in slots:
            if needed(slot) is not None:
                yield event_for(slot)
            t0 = env.now
            yield env.timeout(duration(slot))
            finished[slot] = env.now
            if recorder is not None:
                recorder.record(f"{slot.phase}{slot.microbatch}", f"stage {d}", t0, env.now,
                                category=slot.phase, group="pipeline", chunk=slot.chunk)
            for nxt in _consumers(slot, chunks):
                nd = nxt.chunk % p
                if nd == d:
                    event_for(nxt).succeed()
                else:
                    env.process(transfer(d, nd, slot, event_for(nxt)))

    for d, slots in enumerate(schedule):
        env.process(device(d, slots))
    env.run()
    missing = [s for slots in schedule for s in slots if s not in finished]
    if missing:
        raise RuntimeError(f"pipeline schedule deadlocked: {len(missing)} slots never ran, "
                           f"first {missing[0]}")
    device_end = [max(finished[s] for s in slots) for slots in schedule]
    busy = [sum(duration(s) for s in slots) for slots in schedule]
    return PipelineRun(max(device_end) - start, device_end, busy, finished)


def _consumers(slot: Slot, chunks: int) -> list[Slot]:
    """Slots whose inputs ``slot`` produces."""
    if slot.phase == "F":
        nxt = [Slot(slot.chunk + 1, slot.microbatch, "F")] if slot.chunk < chunks - 1 else []
        return nxt + ([Slot(slot.chunk, slot.microbatch, "B")] if slot.chunk == chunks - 1 else [])
    return [Slot(slot.chunk - 1, slot.microbatch, "B")] if slot.chunk > 0 else []
