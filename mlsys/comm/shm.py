"""The default transport: one anonymous shared-memory segment that every rank maps.

The segment (a ``memfd``: it has no name, so nothing is left behind however the processes end)
holds, in order:

* a header: the abort flag and message, and the sizes below;
* one control line per rank: its sync number and call signature (see :mod:`mlsys.comm.native`),
  its pid, and its exit status, which the launcher writes when the process ends;
* each rank's call signature as text, read only to explain a mismatch;
* each rank's two *mailboxes* and a shared two-part *result* area, used by the compiled (Numba,
  GIL-free) all-reduce and barrier of :mod:`mlsys.comm.native`;
* one bounded channel per ordered pair of ranks for point-to-point messages and the schedules of
  :mod:`mlsys.comm.schedules`: a ring of ``slots`` slots of ``slot_bytes`` bytes. The sender fills
  a slot and then advances ``written``, the receiver consumes it (copying or reducing straight out
  of shared memory) and then advances ``read``. Each counter has one writer and its own cache line,
  so no locks are needed (x86's total store order keeps a payload visible before the counter
  that publishes it). Large messages stream through the ring in pieces.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from . import native
from .errors import CommAborted, CommTimeout, MismatchError
from .transport import META_BYTES, Reducer, Request, Transport, check_meta, explain_mismatch, parse_meta

SHM_DIR = Path("/dev/shm")
MAX_RANKS = 256
DEFAULT_SLOTS = 4
DEFAULT_SLOT_BYTES = 1 << 19
DEFAULT_MAILBOX_BYTES = 1 << 20  # the native all-reduce's piece
SMALL_BYTES = 1 << 15  # up to this, an all-reduce is one sync (every rank reduces everything)

_SIZES_WORDS = 5  # abort flag, world size, slots, slot bytes, mailbox bytes
_MSG_OFFSET, _MSG_BYTES = 64, 1024  # abort message: int64 length, then UTF-8 text
_LINES_OFFSET = native.LINES * 8
_LINE_BYTES = native.LINE_WORDS * 8
SIGNATURE_BYTES = 256
SLOT_HEADER = 128  # int64 piece bytes, int64 message bytes, int64 meta length, meta string
CONTROL_BYTES = 128  # `written` at byte 0, `read` at byte 64 (separate cache lines)
_PAGE = 4096


def _align(n: int, to: int = _PAGE) -> int:
    return -(-n // to) * to


class Layout:
    """Byte offsets of every part of a segment for the given sizes."""

    def __init__(self, world_size: int, slots: int, slot_bytes: int, mailbox_bytes: int) -> None:
        self.world_size, self.slots, self.slot_bytes = world_size, slots, slot_bytes
        self.mailbox_bytes = mailbox_bytes
        self.signatures = _LINES_OFFSET + world_size * _LINE_BYTES
        self.mailboxes = _align(self.signatures + world_size * SIGNATURE_BYTES)
        self.results = self.mailboxes + world_size * 2 * mailbox_bytes  # right after them
        self.channels = self.results + 2 * mailbox_bytes
        self.channel_bytes = CONTROL_BYTES + slots * (SLOT_HEADER + slot_bytes)
        self.total = self.channels + world_size * max(world_size - 1, 0) * self.channel_bytes

    @classmethod
    def of(cls, segment: mmap.mmap) -> Layout:
        _, world, slots, slot_bytes, mailbox = (int(v) for v in np.frombuffer(segment, np.int64,
                                                                               _SIZES_WORDS))
        return cls(world, slots, slot_bytes, mailbox)


def create_segment(world_size: int, slots: int = DEFAULT_SLOTS, slot_bytes: int = DEFAULT_SLOT_BYTES,
                   mailbox_bytes: int = DEFAULT_MAILBOX_BYTES) -> int:
    """A zeroed, sized, nameless segment for ``world_size`` ranks; returns its file descriptor.

    The descriptor is close-on-exec: pass it on with ``subprocess``'s ``pass_fds``.
    """
    if not isinstance(world_size, int) or not 1 <= world_size <= MAX_RANKS:
        raise ValueError(f"shared-memory transport: world_size must be an integer in "
                         f"[1, {MAX_RANKS}], got {world_size!r}")
    for name, value in (("slot_bytes", slot_bytes), ("mailbox_bytes", mailbox_bytes)):
        if value < 64 or value % 64:
            raise ValueError(f"shared-memory transport: {name} must be a positive multiple of "
                             f"64, got {value}")
    if slots < 1:
        raise ValueError(f"shared-memory transport: slots must be >= 1, got {slots}")
    layout = Layout(world_size, slots, slot_bytes, mailbox_bytes)
    fd = _anonymous_file()
    try:
        os.ftruncate(fd, layout.total)
        sizes = np.array([0, world_size, slots, slot_bytes, mailbox_bytes, spin_ns(world_size)],
                         np.int64)
        os.pwrite(fd, sizes.tobytes(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def spin_ns(world_size: int) -> int:
    """How long a wait busy-polls: long while every rank has a core of its own (yielding would
    hand the core to another program for a whole time slice), short when ranks outnumber cores
    (the awaited rank may be waiting for this very core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 50_000 if world_size <= (cores or 1) else 2_000


def _anonymous_file() -> int:
    """A memfd, or where there is none an already unlinked file in /dev/shm (or the temp dir)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("mlsys-comm", os.MFD_CLOEXEC)
    folder = SHM_DIR if SHM_DIR.is_dir() else None  # pragma: no cover - non-Linux systems
    with tempfile.TemporaryFile(dir=folder) as handle:  # pragma: no cover
        return os.dup(handle.fileno())


def map_segment(fd: int) -> mmap.mmap:
    """Map the segment behind ``fd`` (the caller keeps or closes ``fd``)."""
    return mmap.mmap(fd, 0)


def _control(segment: mmap.mmap) -> np.ndarray:
    """The int64 control words: abort flag, sizes, then one line per rank (see ``native``)."""
    world = int(np.frombuffer(segment, np.int64, 2)[1])
    return np.frombuffer(segment, np.int64, native.LINES + world * native.LINE_WORDS)


def _line(segment: mmap.mmap, rank: int) -> np.ndarray:
    start = native.LINES + rank * native.LINE_WORDS
    return _control(segment)[start: start + native.LINE_WORDS]


def mark_exited(segment: mmap.mmap, rank: int, code: int) -> None:
    """Record that rank ``rank``'s process ended with ``code``: ranks waiting on it stop."""
    line = _line(segment, rank)
    line[native.EXIT_CODE] = code
    line[native.EXITED] = 1


def exit_code(segment: mmap.mmap, rank: int) -> int | None:
    """Rank ``rank``'s exit code if the launcher saw its process end, else None."""
    line = _line(segment, rank)
    return int(line[native.EXIT_CODE]) if line[native.EXITED] else None


def set_abort(segment: mmap.mmap, message: str, who: int = -1) -> None:
    """Mark the group aborted with ``message`` (first writer wins); ``who`` = -1: the launcher."""
    flag = np.frombuffer(segment, np.int64, 1)
    if flag[0]:
        return
    data = message.encode()[: _MSG_BYTES - 8]
    np.frombuffer(segment, np.int64, 1, offset=_MSG_OFFSET)[0] = len(data)
    segment[_MSG_OFFSET + 8: _MSG_OFFSET + 8 + len(data)] = data
    flag[0] = who + 2


def read_abort(segment: mmap.mmap) -> str | None:
    if not np.frombuffer(segment, np.int64, 1)[0]:
        return None
    length = int(np.frombuffer(segment, np.int64, 1, offset=_MSG_OFFSET)[0])
    return segment[_MSG_OFFSET + 8: _MSG_OFFSET + 8 + length].decode(errors="replace")


def aborted_by(segment: mmap.mmap) -> int | None:
    """The rank that aborted the group first (-1: the launcher), or None."""
    flag = int(np.frombuffer(segment, np.int64, 1)[0])
    return flag - 2 if flag else None


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
        self.meta = meta
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
    """Channels and mailboxes in one shared-memory segment between the processes of one machine."""

    name = "shm"

    def __init__(self, segment: mmap.mmap, rank: int, timeout: float = 60.0) -> None:
        layout = Layout.of(segment)
        if not 0 <= rank < layout.world_size:
            raise ValueError(f"shared-memory transport: rank must be in [0, {layout.world_size}), "
                             f"got {rank}")
        super().__init__(rank, layout.world_size, timeout)
        self.segment, self.layout = segment, layout
        self._channels: dict[tuple[int, int], _Channel] = {}
        self._control = _control(segment)
        self._mailbox_views: dict[np.dtype, np.ndarray] = {}
        self._signatures: dict[str, tuple[int, bytes]] = {}
        self._published: bytes = b""
        self._seq = 0  # the last sync this rank arrived at
        self._timeout_ns = int(self.timeout * 1e9)
        self._state = np.zeros(3, np.int64)
        self._control[native.LINES + rank * native.LINE_WORDS + native.PID] = os.getpid()

    @classmethod
    def attach(cls, fd: int, rank: int, timeout: float = 60.0) -> SharedMemoryTransport:
        """Map the segment behind ``fd`` (made by :func:`create_segment`) as rank ``rank``."""
        return cls(map_segment(fd), rank, timeout)

    # -- point to point --------------------------------------------------------------------
    def _channel(self, src: int, dst: int) -> _Channel:
        key = (src, dst)
        if key not in self._channels:
            p, layout = self.world_size, self.layout
            index = src * (p - 1) + (dst if dst < src else dst - 1)
            self._channels[key] = _Channel(self.segment,
                                           layout.channels + index * layout.channel_bytes,
                                           layout.slots, layout.slot_bytes)
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

    def exited(self, peer: int) -> int | None:
        return exit_code(self.segment, peer)

    # -- the compiled collectives ----------------------------------------------------------
    def has_all_reduce(self, array: np.ndarray) -> bool:
        """Whether :meth:`all_reduce` runs compiled for ``array``'s dtype."""
        return array.dtype in native.NATIVE_DTYPES

    def agree(self, signature: str) -> None:
        """A barrier that also checks every rank entered the same call (see ``signature``)."""
        fingerprint = self._announce(signature)
        self._seq += 1
        args = (self._control, self.rank, self._seq, fingerprint)
        code = native.sync(*args, time.monotonic_ns() + self._timeout_ns, False)
        if code != native.DONE:
            self._finish(code, lambda deadline: native.sync(*args, deadline, True), signature)

    def all_reduce(self, flat: np.ndarray, op: str, signature: str) -> None:
        """All-reduce the contiguous 1-d ``flat`` in place (``op``: sum, mean, max or min),
        compiled and without the GIL."""
        if flat.size == 0:
            self.agree(signature)
            return
        boxes = self._mailbox_views.get(flat.dtype)
        if boxes is None:
            boxes = self._mailboxes(flat.dtype)
        state, seq = self._state, self._seq
        scale = 1.0 / self.world_size if op == "mean" else 1.0
        args = (flat, boxes, self._control, self.rank, seq, self._announce(signature),
                native.OPS[op], scale, flat.nbytes <= SMALL_BYTES, state)
        try:
            code = native.all_reduce(*args, time.monotonic_ns() + self._timeout_ns, False)
            if code != native.DONE:
                self._finish(code, lambda deadline: native.all_reduce(*args, deadline, True),
                             signature, lambda: (int(state[0]), int(state[2])), (0, seq))
        finally:
            self._seq = int(state[2])

    def _mailboxes(self, dtype: np.dtype) -> np.ndarray:
        """The mailboxes then the result area as one ``(world + 1, 2, elements)`` array."""
        per_box = self.layout.mailbox_bytes // dtype.itemsize
        boxes = np.frombuffer(self.segment, dtype, (self.world_size + 1) * 2 * per_box,
                              offset=self.layout.mailboxes)
        self._mailbox_views[dtype] = boxes = boxes.reshape(self.world_size + 1, 2, per_box)
        return boxes

    def _announce(self, signature: str) -> int:
        """The signature's 63-bit hash; its text goes where a mismatching rank can read it."""
        known = self._signatures.get(signature)
        if known is None:
            raw = signature.encode()[:SIGNATURE_BYTES - 1]
            digest = hashlib.blake2b(signature.encode(), digest_size=8).digest()
            known = (int.from_bytes(digest, "little") >> 1, raw.ljust(SIGNATURE_BYTES, b"\0"))
            if len(self._signatures) > 4096:
                self._signatures.clear()
            self._signatures[signature] = known
        if known[1] != self._published:
            offset = self.layout.signatures + self.rank * SIGNATURE_BYTES
            self.segment[offset: offset + SIGNATURE_BYTES] = known[1]
            self._published = known[1]
        return known[0]

    def _signature_of(self, rank: int) -> str:
        offset = self.layout.signatures + rank * SIGNATURE_BYTES
        return self.segment[offset: offset + SIGNATURE_BYTES].rstrip(b"\0").decode(errors="replace")

    def _finish(self, code: int, step, signature: str, progress=lambda: None,  # noqa: ANN001
                last: object = None) -> None:
        """Handle a wait's ``code``, calling ``step(deadline_ns)`` again until it is done.

        ``progress()`` tells how far the call got (``last``: where it started); a deadline that
        passes without progress is a timeout.
        """
        while code != native.DONE:
            error = self._failure(code, signature)
            if error is None:  # the deadline passed: fail unless the call moved meanwhile
                now = progress()
                if now != last:
                    last = now
                    code = step(time.monotonic_ns() + self._timeout_ns)
                    continue
                error = CommTimeout(
                    f"rank {self.rank}: no progress for {self.timeout:g} s in "
                    f"{signature.split(' ')[0]}: waiting for rank {code} (is it dead or hung, or "
                    "in a different collective?)")
            if not isinstance(error, CommAborted):
                self.abort(str(error))
            raise error

    def _failure(self, code: int, signature: str) -> Exception | None:
        what = signature.split(" ")[0]
        if code == native.ABORTED:
            return CommAborted(f"rank {self.rank}: the group was aborted: {read_abort(self.segment)}")
        if code <= native.EXITED_PEER:
            peer = native.EXITED_PEER - code
            return CommAborted(f"rank {self.rank}: rank {peer} exited (code {self.exited(peer)}) "
                               f"while this rank waited for it in {what}")
        if code <= native.MISMATCH:
            peer = native.MISMATCH - code
            return MismatchError(explain_mismatch(self.rank, signature, peer,
                                                  self._signature_of(peer)))
        return None

    # -- group state -----------------------------------------------------------------------
    def abort(self, message: str) -> None:
        set_abort(self.segment, f"rank {self.rank}: {message}", self.rank)

    def aborted(self) -> str | None:
        return read_abort(self.segment) if self._control[native.ABORT] else None

    def close(self) -> None:
        self._channels.clear()
