"""The default transport: bounded single-producer/single-consumer channels in shared memory.

One file in ``/dev/shm`` holds a header (abort flag and message, each rank's pid) and one channel
per ordered pair of ranks. A channel is a ring of ``slots`` slots of ``slot_bytes`` bytes; the
sender fills a slot and then advances ``written``, the receiver consumes it (copying or reducing
straight out of shared memory) and then advances ``read``. Each counter has one writer and sits on
its own cache line, so no locks are needed: x86's total store order keeps the payload visible
before the counter that publishes it. Large messages stream through the ring in pieces, so the
sender's copy-in and the receiver's reduce overlap like a pipeline.

The launcher creates the file and removes its name as soon as every rank has mapped it, so the
memory disappears with the last process even when processes are killed.
"""

from __future__ import annotations

import mmap
import os
import uuid
from pathlib import Path

import numpy as np

from .transport import META_BYTES, Reducer, Request, Transport, check_meta, parse_meta

SHM_DIR = Path("/dev/shm")
PREFIX = "mlsys-comm-"
HEADER_BYTES = 4096
MAX_RANKS = 256
SLOT_HEADER = 128  # int64 piece bytes, int64 message bytes, int64 meta length, meta string
CONTROL_BYTES = 128  # `written` at byte 0, `read` at byte 64 (separate cache lines)
_MSG_OFFSET = 2048  # abort message location in the header
DEFAULT_SLOTS = 4
DEFAULT_SLOT_BYTES = 1 << 19


def segment_bytes(world_size: int, slots: int, slot_bytes: int) -> int:
    channel = CONTROL_BYTES + slots * (SLOT_HEADER + slot_bytes)
    return HEADER_BYTES + world_size * max(world_size - 1, 0) * channel


def create_segment(world_size: int, slots: int = DEFAULT_SLOTS,
                   slot_bytes: int = DEFAULT_SLOT_BYTES) -> Path:
    """Create and size a zeroed segment for ``world_size`` ranks; returns its path."""
    if not 1 <= world_size <= MAX_RANKS:
        raise ValueError(f"shared-memory transport: world_size must be in [1, {MAX_RANKS}], "
                         f"got {world_size}")
    if slots < 1 or slot_bytes < 64 or slot_bytes % 64:
        raise ValueError(f"shared-memory transport: need slots >= 1 and slot_bytes a positive "
                         f"multiple of 64, got slots={slots}, slot_bytes={slot_bytes}")
    path = SHM_DIR / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, segment_bytes(world_size, slots, slot_bytes))
        header = np.zeros(4, np.int64)
        header[1:] = world_size, slots, slot_bytes
        os.pwrite(fd, header.tobytes(), 0)
    finally:
        os.close(fd)
    return path


def map_segment(path: str | os.PathLike) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, 0)
    finally:
        os.close(fd)


def pids(segment: mmap.mmap) -> np.ndarray:
    """The pid each rank wrote when it attached (0 while not yet attached)."""
    world = int(np.frombuffer(segment, np.int64, 4)[1])
    return np.frombuffer(segment, np.int64, world, offset=8 * 8)


def set_abort(segment: mmap.mmap, message: str, who: int = -1) -> None:
    """Mark the group aborted with ``message`` (first writer wins)."""
    flag = np.frombuffer(segment, np.int64, 1)
    if flag[0]:
        return
    data = message.encode()[: HEADER_BYTES - _MSG_OFFSET - 8]
    np.frombuffer(segment, np.int64, 1, offset=_MSG_OFFSET)[0] = len(data)
    segment[_MSG_OFFSET + 8: _MSG_OFFSET + 8 + len(data)] = data
    flag[0] = who + 2  # nonzero: rank who failed (-1: the launcher)


def read_abort(segment: mmap.mmap) -> str | None:
    if not np.frombuffer(segment, np.int64, 1)[0]:
        return None
    length = int(np.frombuffer(segment, np.int64, 1, offset=_MSG_OFFSET)[0])
    return segment[_MSG_OFFSET + 8: _MSG_OFFSET + 8 + length].decode(errors="replace")


class _Channel:
    """Views on one ordered pair's control counters and slots."""

    def __init__(self, segment: mmap.mmap, offset: int, slots: int, slot_bytes: int) -> None:
        self.ctl = np.frombuffer(segment, np.int64, CONTROL_BYTES // 8, offset=offset)
        base = offset + CONTROL_BYTES
        stride = SLOT_HEADER + slot_bytes
        self.slots = slots
        self.headers = [np.frombuffer(segment, np.int64, 3, offset=base + i * stride)
                        for i in range(slots)]
        self.metas = [np.frombuffer(segment, np.uint8, META_BYTES, offset=base + i * stride + 24)
                      for i in range(slots)]
        self.payloads = [np.frombuffer(segment, np.uint8, slot_bytes,
                                       offset=base + i * stride + SLOT_HEADER)
                         for i in range(slots)]
        self.slot_bytes = slot_bytes


class _Send(Request):
    kind = "send"

    def __init__(self, channel: _Channel, dst: int, data: np.ndarray, meta: str) -> None:
        self.channel, self.peer = channel, dst
        self.data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        self.meta = np.frombuffer(meta.encode(), np.uint8)
        self.pos, self.first, self.done = 0, True, False

    def progress(self) -> bool:
        ch, moved = self.channel, False
        ctl = ch.ctl
        total = self.data.size
        while not self.done:
            written = int(ctl[0])
            if written - int(ctl[8]) >= ch.slots:
                break
            slot = written % ch.slots
            n = min(ch.slot_bytes, total - self.pos)
            header = ch.headers[slot]
            header[0], header[1] = n, total
            if self.first:
                header[2] = self.meta.size
                ch.metas[slot][: self.meta.size] = self.meta
                self.first = False
            else:
                header[2] = -1
            if n:
                ch.payloads[slot][:n] = self.data[self.pos: self.pos + n]
            ctl[0] = written + 1  # publish the slot
            self.pos += n
            moved = True
            self.done = self.pos >= total
        return moved


class _Recv(Request):
    kind = "recv"

    def __init__(self, channel: _Channel, src: int, rank: int, into: np.ndarray | None,
                 reduce: Reducer | None, expect: str | None) -> None:
        self.channel, self.peer, self.rank = channel, src, rank
        self.into, self.reduce, self.expect = into, reduce, expect
        self.pos, self.done, self.result = 0, False, into
        self.flat: np.ndarray | None = None

    def _start(self, meta: str, total: int) -> None:
        check_meta(meta, self.expect, self.peer, self.rank)
        if self.into is None:
            _, dtype, shape = parse_meta(meta)
            self.into = self.result = np.empty(shape, dtype)
        if self.into.nbytes != total:
            raise ValueError(f"recv on rank {self.rank}: rank {self.peer} sent {total} bytes "
                             f"({meta}) into a buffer of {self.into.nbytes} bytes")
        self.flat = self.into.reshape(-1)

    def progress(self) -> bool:
        ch, moved = self.channel, False
        ctl = ch.ctl
        while not self.done:
            read = int(ctl[8])
            if int(ctl[0]) == read:
                break
            slot = read % ch.slots
            header = ch.headers[slot]
            n, total, meta_len = int(header[0]), int(header[1]), int(header[2])
            if self.flat is None:
                self._start(ch.metas[slot][:meta_len].tobytes().decode(), total)
            if n:
                itemsize = self.flat.itemsize
                target = self.flat[self.pos // itemsize: (self.pos + n) // itemsize]
                piece = ch.payloads[slot][:n].view(self.flat.dtype)
                if self.reduce is None:
                    target[...] = piece
                else:
                    self.reduce(target, piece)
            ctl[8] = read + 1  # hand the slot back
            self.pos += n
            moved = True
            self.done = self.pos >= total
        return moved


class SharedMemoryTransport(Transport):
    """Channels in one shared-memory segment between the processes of one machine."""

    name = "shm"

    def __init__(self, segment: mmap.mmap, rank: int, timeout: float = 60.0) -> None:
        _, world_size, slots, slot_bytes = (int(v) for v in np.frombuffer(segment, np.int64, 4))
        if not 0 <= rank < world_size:
            raise ValueError(f"shared-memory transport: rank must be in [0, {world_size}), "
                             f"got {rank}")
        super().__init__(rank, world_size, timeout)
        self.segment, self.slots, self.slot_bytes = segment, slots, slot_bytes
        self._channels: dict[tuple[int, int], _Channel] = {}
        self._abort_flag = np.frombuffer(segment, np.int64, 1)
        pids(segment)[rank] = os.getpid()

    @classmethod
    def attach(cls, path: str | os.PathLike, rank: int, timeout: float = 60.0
               ) -> SharedMemoryTransport:
        """Map the segment at ``path`` (made by :func:`create_segment`) as rank ``rank``."""
        return cls(map_segment(path), rank, timeout)

    def _channel(self, src: int, dst: int) -> _Channel:
        key = (src, dst)
        if key not in self._channels:
            p = self.world_size
            index = src * (p - 1) + (dst if dst < src else dst - 1)
            size = CONTROL_BYTES + self.slots * (SLOT_HEADER + self.slot_bytes)
            self._channels[key] = _Channel(self.segment, HEADER_BYTES + index * size,
                                           self.slots, self.slot_bytes)
        return self._channels[key]

    def isend(self, dst: int, data: np.ndarray, meta: str) -> Request:
        self.check_peer(dst, "send")
        return _Send(self._channel(self.rank, dst), dst, data, meta)

    def irecv(self, src: int, into: np.ndarray | None = None, reduce: Reducer | None = None,
              expect: str | None = None) -> Request:
        self.check_peer(src, "recv")
        return _Recv(self._channel(src, self.rank), src, self.rank, into, reduce, expect)

    def poll(self, src: int) -> bool:
        ctl = self._channel(src, self.rank).ctl
        return int(ctl[0]) != int(ctl[8])

    def abort(self, message: str) -> None:
        set_abort(self.segment, f"rank {self.rank}: {message}", self.rank)

    def aborted(self) -> str | None:
        return read_abort(self.segment) if self._abort_flag[0] else None

    def close(self) -> None:
        self._channels.clear()
