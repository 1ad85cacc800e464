"""Pipeline schedules as data: for each device, the ordered slots ``(chunk, microbatch, F/B)``.

A model of ``p * v`` chunks is spread over ``p`` devices, chunk ``c`` on device ``c % p`` (``v``
chunks per device only for the interleaved schedule). The same slot lists drive the real stages
(:mod:`mlsys.parallel.pipeline`, one OS process per device) and the simulator
(``simulators.training.pipeline``); the closed-form bubble fractions below are what both must
reproduce in the ideal case (equal stages, free transfers).

- GPipe (Huang et al., 2019): all forwards, then all backwards.
- 1F1B / PipeDream-Flush (Narayanan et al., 2019, 2021): ``p - s - 1`` warm-up forwards on device
  ``s``, then one forward / one backward alternately, so at most ``p - s`` micro-batches are alive.
- Interleaved 1F1B (Narayanan et al., SC'21): each device runs ``v`` chunks in a depth-first order,
  shrinking the bubble by ``v`` at the cost of ``v`` times more point-to-point transfers.

(A :data:`PipelineSchedule` orders compute slots on devices; a collective algorithm's
:class:`mlsys.comm.schedules.Schedule` orders messages between ranks.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Slot", "PipelineSchedule", "SCHEDULES", "gpipe", "one_f_one_b", "interleaved", "build",
           "bubble_fraction", "peak_in_flight", "num_chunks", "consumers"]

SCHEDULES = ("gpipe", "1f1b", "interleaved")


class Slot(NamedTuple):
    """Run the forward (``"F"``) or backward (``"B"``) pass of model ``chunk`` on ``microbatch``.

    A named tuple: schedules of a trillion-parameter model hold 10^5 of them, hashed at every step.
    """

    chunk: int
    microbatch: int
    phase: str


PipelineSchedule = list[list[Slot]]  # one ordered list of slots per device


def _check(p: int, m: int, v: int = 1) -> None:
    for name, value in (("stages", p), ("microbatches", m), ("chunks", v)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def gpipe(p: int, m: int) -> PipelineSchedule:
    """GPipe: every device runs all ``m`` forwards, then all ``m`` backwards."""
    _check(p, m)
    return [[Slot(s, i, "F") for i in range(m)] + [Slot(s, i, "B") for i in range(m)]
            for s in range(p)]


def _warm_up_then_alternate(total: int, warmup: int, slot: Callable[[int, str], Slot]) -> list[Slot]:
    """One stage's 1F1B order over ``total`` units of work: ``warmup`` forwards, then one forward
    and one backward in turn, then the remaining backwards."""
    slots = [slot(k, "F") for k in range(warmup)]
    for i in range(total - warmup):
        slots += [slot(warmup + i, "F"), slot(i, "B")]
    return slots + [slot(k, "B") for k in range(total - warmup, total)]


def one_f_one_b(p: int, m: int) -> PipelineSchedule:
    """1F1B: warm up with ``p - s - 1`` forwards, alternate, then drain the backwards."""
    _check(p, m)
    return [_warm_up_then_alternate(m, min(p - s - 1, m), lambda k, phase, s=s: Slot(s, k, phase))
            for s in range(p)]


def interleaved(p: int, m: int, v: int) -> PipelineSchedule:
    """Interleaved 1F1B with ``v`` chunks per device, in Megatron-LM's order (needs ``m % p == 0``)."""
    _check(p, m, v)
    if m % p:
        raise ValueError(f"interleaved schedule needs microbatches ({m}) divisible by stages ({p})")
    total = m * v

    def slot(s: int, k: int, phase: str) -> Slot:
        local = (k % (p * v)) // p
        if phase == "B":
            local = v - 1 - local
        return Slot(local * p + s, (k // (p * v)) * p + k % p, phase)

    return [_warm_up_then_alternate(total, min((p - s - 1) * 2 + (v - 1) * p, total),
                                    lambda k, phase, s=s: slot(s, k, phase))
            for s in range(p)]


def build(name: str, p: int, m: int, v: int = 1) -> PipelineSchedule:
    """The schedule called ``name`` (``"gpipe"``, ``"1f1b"`` or ``"interleaved"``)."""
    if name == "gpipe":
        return gpipe(p, m)
    if name == "1f1b":
        return one_f_one_b(p, m)
    if name == "interleaved":
        return interleaved(p, m, v)
    raise ValueError(f"unknown pipeline schedule {name!r}; expected one of {SCHEDULES}")


def bubble_fraction(name: str, p: int, m: int, v: int = 1) -> float:
    """Idle fraction of a step in the ideal case: (p-1)/(m+p-1), or (p-1)/(v*m+p-1) interleaved.

    The interleaved bubble is the paper's ``(p-1)/(v*m)`` of the ideal time, as a share of the
    whole step.
    """
    _check(p, m, v)
    chunks = v if name == "interleaved" else 1
    return (p - 1) / (chunks * m + p - 1)


def peak_in_flight(schedule: PipelineSchedule) -> list[int]:
    """Per device, the most chunk-micro-batches whose forward ran but whose backward has not:
    the number of activation sets a device must hold at once."""
    peaks = []
    for slots in schedule:
        alive = peak = 0
        for slot in slots:
            alive += 1 if slot.phase == "F" else -1
            peak = max(peak, alive)
        peaks.append(peak)
    return peaks


def num_chunks(schedule: PipelineSchedule) -> int:
    """How many model chunks the schedule runs (``p * v``)."""
    return 1 + max(slot.chunk for slots in schedule for slot in slots)


def consumers(slot: Slot, chunks: int) -> list[Slot]:
    """The slots whose input ``slot`` produces: a forward feeds the next chunk's forward (the
    last chunk's feeds its own backward, through the loss), a backward the previous chunk's."""
    if slot.phase == "F":
        nxt = [Slot(slot.chunk + 1, slot.microbatch, "F")] if slot.chunk < chunks - 1 else []
        return nxt + ([Slot(slot.chunk, slot.microbatch, "B")] if slot.chunk == chunks - 1 else [])
    return [Slot(slot.chunk - 1, slot.microbatch, "B")] if slot.chunk > 0 else []
