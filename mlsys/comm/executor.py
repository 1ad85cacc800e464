"""Run a :class:`~mlsys.comm.schedules.Schedule` for one rank over a transport.

Each round becomes, for this rank, a list of outgoing and incoming messages (the round's steps
between the same two ranks coalesce into one message over their chunks). All of a round's
requests are driven together, so exchanges larger than the transport's buffers cannot deadlock.
A chunk this rank both sends and receives in one round is sent from a snapshot taken when the
round begins, which is the schedule's semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .schedules import REDUCE_OPS, Schedule
from .transport import Transport, make_meta

Span = tuple[int, int]


@dataclass(frozen=True)
class Message:
    peer: int
    spans: tuple[Span, ...]  # element ranges, merged where contiguous
    reduce: bool


@dataclass(frozen=True)
class RoundPlan:
    sends: tuple[Message, ...]
    recvs: tuple[Message, ...]
    snapshot: bool  # a sent range is also received this round


def _merge(ranges: list[Span]) -> tuple[Span, ...]:
    merged: list[list[int]] = []
    for start, stop in sorted(ranges):
        if merged and merged[-1][1] == start:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    return tuple((a, b) for a, b in merged)


def _overlap(a: tuple[Span, ...], b: tuple[Span, ...]) -> bool:
    return any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b)


@lru_cache(maxsize=256)
def plan(schedule: Schedule, rank: int) -> tuple[RoundPlan, ...]:
    """This rank's view of ``schedule``: per round, whom it sends to and receives from."""
    rounds = []
    for steps in schedule.rounds():
        sends: dict[int, list[Span]] = {}
        recvs: dict[int, list[Span]] = {}
        reduce: dict[int, bool] = {}
        for s in steps:
            chunk = schedule.chunks[s.chunk]
            if s.src == rank:
                sends.setdefault(s.dst, []).append(chunk)
            if s.dst == rank:
                recvs.setdefault(s.src, []).append(chunk)
                if reduce.setdefault(s.src, s.op == "reduce") != (s.op == "reduce"):
                    raise ValueError(f"schedule {schedule.algorithm}: rank {s.src} both copies "
                                     f"and reduces into rank {rank} in round {s.round}")
        out = tuple(Message(d, _merge(r), False) for d, r in sends.items())
        inc = tuple(Message(s, _merge(r), reduce[s]) for s, r in recvs.items())
        snapshot = any(_overlap(m.spans, n.spans) for m in out for n in inc)
        rounds.append(RoundPlan(out, inc, snapshot))
    return tuple(rounds)


def _gather(buf: np.ndarray, spans: tuple[Span, ...]) -> np.ndarray:
    if len(spans) == 1:
        return buf[spans[0][0]: spans[0][1]]
    return np.concatenate([buf[a:b] for a, b in spans])


def execute(schedule: Schedule, transport: Transport, buffer: np.ndarray, op: str = "sum",
            meta: str | None = None) -> np.ndarray:
    """Run ``schedule`` in place on this rank's flat, contiguous ``buffer``; returns it.

    ``meta`` (default: the collective, dtype and shape of ``buffer``) travels with every message
    and must match on every rank, so mismatched calls fail with both ranks' shapes.
    """
    if buffer.ndim != 1 or buffer.size != schedule.count or not buffer.flags.c_contiguous:
        raise ValueError(f"execute: expected a contiguous 1-d buffer of {schedule.count} "
                         f"elements, got shape {buffer.shape}")
    if schedule.world_size != transport.world_size:
        raise ValueError(f"execute: schedule for {schedule.world_size} ranks on a group of "
                         f"{transport.world_size}")
    reducer = REDUCE_OPS[op]
    meta = meta or make_meta(schedule.collective, buffer)
    for rp in plan(schedule, transport.rank):
        source = buffer.copy() if rp.snapshot else buffer
        requests = []
        scatter: list[tuple[np.ndarray, tuple[Span, ...]]] = []
        for m in rp.recvs:
            if len(m.spans) == 1:
                target = buffer[m.spans[0][0]: m.spans[0][1]]
                requests.append(transport.irecv(m.peer, target, reducer if m.reduce else None,
                                                meta))
            else:  # non-contiguous chunks arrive in one message; unpack after the round
                tmp = _gather(buffer, m.spans)
                requests.append(transport.irecv(m.peer, tmp, reducer if m.reduce else None,
                                                meta))
                scatter.append((tmp, m.spans))
        for m in rp.sends:
            requests.append(transport.isend(m.peer, _gather(source, m.spans),
                                            meta))
        transport.wait_all(requests)
        for tmp, spans in scatter:
            offset = 0
            for a, b in spans:
                buffer[a:b] = tmp[offset: offset + b - a]
                offset += b - a
    return buffer

