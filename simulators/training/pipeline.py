"""Execute a pipeline :data:`~simulators.training.schedules.Schedule` on modelled devices (SimPy).

Each device runs its slots in order; a forward of chunk ``c`` waits for chunk ``c - 1``'s
forward of the same micro-batch to arrive, a backward waits for chunk ``c + 1``'s backward.
Transfers between devices take ``p2p_time``: on a link of their own while the sender computes
on, or, with ``blocking_sends``, holding the sending device until they are delivered (a
synchronous send, as Megatron-LM's pipeline did before it overlapped its transfers). ``release``
may hold a slot back until some time (its parameters are still being gathered, say).
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
                 recorder: Recorder | None = None, start: float = 0.0, *,
                 blocking_sends: bool = False,
                 release: Callable[[Slot], float] | None = None) -> PipelineRun:
    """Simulate ``schedule``; ``duration(slot)`` gives each slot's compute time in seconds."""
    if p2p_time < 0:
        raise ValueError(f"p2p_time must be >= 0, got {p2p_time}")
    p = len(schedule)
    chunks = 1 + max(slot.chunk for slots in schedule for slot in slots)
    env = simpy.Environment(initial_time=start)
    arrival: dict[Slot, float] = {}  # when the slot's input is on its device
    waiting: dict[Slot, simpy.Event] = {}  # a device blocked on that input
    finished: dict[Slot, float] = {}
    busy = [0.0] * p

    def deliver(slot: Slot, at: float) -> None:
        arrival[slot] = at
        if slot in waiting:
            gate = waiting.pop(slot)
            env.timeout(at - env.now).callbacks.append(lambda _: gate.succeed())

    def device(d: int, slots: list[Slot]):
        for slot in slots:
            if slot.phase == "B" or slot.chunk > 0:  # all but the first chunk's forwards wait
                if slot not in arrival:
                    waiting[slot] = env.event()
                    yield waiting[slot]
                elif arrival[slot] > env.now:
                    yield env.timeout(arrival[slot] - env.now)
            if release is not None and release(slot) > env.now:
                yield env.timeout(release(slot) - env.now)
            t0, dt = env.now, duration(slot)
            yield env.timeout(dt)
            busy[d] += dt
            finished[slot] = env.now
            if recorder is not None:
                recorder.record(f"{slot.phase}{slot.microbatch}", f"stage {d}", t0, env.now,
                                category=slot.phase, group="pipeline", chunk=slot.chunk)
            for nxt in _consumers(slot, chunks):
                nd = nxt.chunk % p
                if nd == d:
                    deliver(nxt, env.now)
                    continue
                t0 = env.now
                if blocking_sends and p2p_time > 0:
                    yield env.timeout(p2p_time)
                if recorder is not None and p2p_time > 0:
                    recorder.record(f"{slot.phase}{slot.microbatch}", f"p2p {d}->{nd}", t0,
                                    t0 + p2p_time, category="p2p", group="pipeline")
                deliver(nxt, t0 + p2p_time)

    for d, slots in enumerate(schedule):
        env.process(device(d, slots))
    env.run()
    missing = [s for slots in schedule for s in slots if s not in finished]
    if missing:
        raise RuntimeError(f"pipeline schedule deadlocked: {len(missing)} slots never ran, "
                           f"first {missing[0]}")
    device_end = [max(finished[s] for s in slots) for slots in schedule]
    return PipelineRun(max(device_end) - start, device_end, busy, finished)


def _consumers(slot: Slot, chunks: int) -> list[Slot]:
    """Slots whose inputs ``slot`` produces."""
    if slot.phase == "F":
        nxt = [Slot(slot.chunk + 1, slot.microbatch, "F")] if slot.chunk < chunks - 1 else []
        return nxt + ([Slot(slot.chunk, slot.microbatch, "B")] if slot.chunk == chunks - 1 else [])
    return [Slot(slot.chunk - 1, slot.microbatch, "B")] if slot.chunk > 0 else []
