"""Execute a :data:`~mlsys.parallel.schedules.PipelineSchedule` on modelled devices (SimPy).

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

from mlsys.parallel.schedules import PipelineSchedule, Slot, consumers, num_chunks
from simulators.core import Recorder


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


def run_pipeline(schedule: PipelineSchedule, duration: Callable[[Slot], float], p2p_time: float = 0.0,
                 recorder: Recorder | None = None, start: float = 0.0, *,
                 blocking_sends: bool = False,
                 release: Callable[[Slot], float] | None = None) -> PipelineRun:
    """Simulate ``schedule``; ``duration(slot)`` gives each slot's compute time in seconds."""
    if p2p_time < 0:
        raise ValueError(f"p2p_time must be >= 0, got {p2p_time}")
    p = len(schedule)
    chunks = num_chunks(schedule)
    env = simpy.Environment(initial_time=start)
    arrival: dict[Slot, float] = {}  # when the slot's input is on its device
    waiting: dict[Slot, simpy.Event] = {}  # a device blocked on that input
    finished: dict[Slot, float] = {}
    busy = [0.0] * p

    def deliver(slot: Slot, at: float) -> None:
        arrival[slot] = at
        gate = waiting.pop(slot, None)
        if gate is not None:
            gate.succeed()

    def device(d: int, slots: list[Slot]):
        stage = f"stage {d}"
        for slot in slots:
            if slot.phase == "B" or slot.chunk > 0:  # all but the first chunk's forwards wait
                if slot not in arrival:
                    waiting[slot] = gate = env.event()
                    yield gate
                ready = arrival[slot]
                if release is not None:
                    ready = max(ready, release(slot))
            else:
                ready = start if release is None else release(slot)
            dt = duration(slot)
            t0 = max(ready, env.now)
            yield env.timeout(t0 + dt - env.now)  # wait for the input, then compute
            now = env.now
            busy[d] += dt
            finished[slot] = now
            if recorder is not None:
                recorder.record(f"{slot.phase}{slot.microbatch}", stage, t0, now,
                                category=slot.phase, group="pipeline", chunk=slot.chunk)
            for nxt in consumers(slot, chunks):
                nd = nxt.chunk % p
                if nd == d or not p2p_time:
                    deliver(nxt, now)
                    continue
                if recorder is not None:
                    recorder.record(f"{slot.phase}{slot.microbatch}", f"p2p {d}->{nd}", now,
                                    now + p2p_time, category="p2p", group="pipeline")
                if blocking_sends:
                    yield env.timeout(p2p_time)
                deliver(nxt, now + p2p_time)

    for d, slots in enumerate(schedule):
        env.process(device(d, slots))
    env.run()
    missing = [s for slots in schedule for s in slots if s not in finished]
    if missing:
        raise RuntimeError(f"pipeline schedule deadlocked: {len(missing)} slots never ran, "
                           f"first {missing[0]}")
    device_end = [max(finished[s] for s in slots) for slots in schedule]
    return PipelineRun(max(device_end) - start, device_end, busy, finished)

