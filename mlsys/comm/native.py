"""Compiled (Numba, GIL-free) kernels of the shared-memory transport's fast collectives.

Ranks meet at numbered *syncs*: rank ``r`` publishes its data for sync ``s`` in buffers of parity
``s % 2``, stores ``s`` into its sequence word with release ordering, and waits until every rank's
word reaches ``s`` (acquire loads). Data published at sync ``s`` is read by every rank before it
arrives at sync ``s + 1``, so two buffers per rank (the epoch's parity: a sense-reversing flag that
never wraps) are enough and no lock is ever taken. Each sync also compares the call's signature
hash, so ranks that disagree about the collective stop at the first sync instead of exchanging
mismatched data.

An all-reduce of a small buffer is one sync: every rank copies its buffer into its mailbox and
reduces all mailboxes in rank order (so every rank computes bitwise the same result). A larger one
goes in pieces of two syncs each: every rank reduces its block of the piece from all mailboxes
into a shared result (a direct reduce-scatter), then copies the whole result out (a direct
all-gather): the ``direct`` schedule of :mod:`mlsys.comm.schedules`, with each "send to all" one
write into shared memory. Every kernel releases the GIL, so a communication thread overlaps with
Python code running on another.

Waits busy-poll (for up to a millisecond when every rank has a core of its own, a few microseconds
when ranks outnumber cores), then yield the core, then sleep in short naps;
they return to Python when done, when another rank aborted or exited, on a signature mismatch, or
at a deadline, so the caller can raise instead of hanging.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# The control words (int64) every kernel gets: word 0 is the abort flag, word 1 the world size,
# word SPIN how long a wait busy-polls before it yields the core, and from word LINES on one
# 128-byte line per rank (two cache lines).
ABORT, WORLD, SPIN, LINES = 0, 1, 5, 256
LINE_WORDS = 16
SEQ = 0          # the last sync this rank arrived at
FINGERPRINT = 1  # FINGERPRINT + parity: the signature hash of that sync's call
PID = 8          # the process id (0 until the rank attached)
EXITED = 9       # 1 once the launcher saw this rank's process end
EXIT_CODE = 10   # its exit code (negative: killed by that signal)

# Return codes of the waits (a value >= 0 is the rank still awaited at the deadline).
DONE, ABORTED = -1, -2
MISMATCH = -1000  # MISMATCH - q: rank q's signature differs
EXITED_PEER = -2000  # EXITED_PEER - q: rank q exited before arriving

OPS = {"sum": 0, "max": 1, "min": 2, "mean": 0}  # a mean is a sum times 1 / world
# after spinning, yield the core for this long, then nap: a yielding wait still takes its share of
# the core (a DDP communication thread waiting for a slower rank would slow backward beside it)
YIELD_NS = 200_000


@intrinsic
def _load_acquire(typingctx, array, index):  # noqa: ANN001, ANN202
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.load_atomic(builder.gep(data, [args[1]]), ordering="acquire", align=8)

    return types.int64(array, index), codegen


@intrinsic
def _store_release(typingctx, array, index, value):  # noqa: ANN001, ANN202
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        builder.store_atomic(args[2], builder.gep(data, [args[1]]), ordering="release", align=8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def _now_ns(typingctx):  # noqa: ANN001, ANN202
    """CLOCK_MONOTONIC in nanoseconds (the clock of Python's ``time.monotonic_ns``)."""
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        i64 = ir.IntType(64)
        timespec = cgutils.alloca_once(builder, ir.LiteralStructType([i64, i64]))
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32), timespec.type]),
            "clock_gettime")
        builder.call(fn, [ir.Constant(ir.IntType(32), 1), timespec])  # 1 = CLOCK_MONOTONIC
        seconds = builder.load(cgutils.gep(builder, timespec, 0, 0))
        nanos = builder.load(cgutils.gep(builder, timespec, 0, 1))
        return builder.add(builder.mul(seconds, ir.Constant(i64, 1_000_000_000)), nanos)

    return types.int64(), codegen


@intrinsic
def _yield(typingctx):  # noqa: ANN001, ANN202
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _nap(typingctx, micros):  # noqa: ANN001, ANN202
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]), "usleep")
        builder.call(fn, [builder.trunc(args[0], ir.IntType(32))])
        return context.get_dummy_value()

    return types.void(micros), codegen


@njit(nogil=True, cache=True)
def arrive(control, rank, seq, fingerprint):  # noqa: ANN001, ANN201
    """Publish this rank's signature for sync ``seq``, then ``seq`` itself (release)."""
    base = LINES + rank * LINE_WORDS
    control[base + FINGERPRINT + (seq & 1)] = fingerprint
    _store_release(control, base + SEQ, seq)


@njit(nogil=True, cache=True)
def wait(control, seq, fingerprint, deadline_ns):  # noqa: ANN001, ANN201
    """Wait until every rank arrived at sync ``seq`` with the same signature; a return code.

    An aborted group stays aborted: every later wait returns ``ABORTED`` at once."""
    if _load_acquire(control, ABORT) != 0:
        return ABORTED
    start = _now_ns()
    for q in range(control[WORLD]):
        base = LINES + q * LINE_WORDS
        while _load_acquire(control, base + SEQ) < seq:
            if _load_acquire(control, ABORT) != 0:
                return ABORTED
            if (_load_acquire(control, base + EXITED) != 0
                    and _load_acquire(control, base + SEQ) < seq):
                return EXITED_PEER - q
            now = _now_ns()
            if now >= deadline_ns:
                return q
            idle = now - start
            if idle > YIELD_NS:
                _nap(min(1000, 50 + idle // 20_000))
            elif idle > control[SPIN]:
                _yield()
        if control[base + FINGERPRINT + (seq & 1)] != fingerprint:
            return MISMATCH - q
    return DONE


@njit(nogil=True, cache=True)
def sync(control, rank, seq, fingerprint, deadline_ns, resume):  # noqa: ANN001, ANN201
    """Arrive at sync ``seq`` (unless resuming) and wait for every rank; a :func:`wait` code."""
    if not resume:
        arrive(control, rank, seq, fingerprint)
    return wait(control, seq, fingerprint, deadline_ns)


@njit(nogil=True, cache=True)
def _copy(dst, src):  # noqa: ANN001, ANN202
    for i in range(dst.size):
        dst[i] = src[i]


@njit(nogil=True, cache=True)
def _reduce_rows(out, boxes, world, parity, start, stop, op, scale):  # noqa: ANN001, ANN202
    """``out[:] = (boxes[0, parity, start:stop] (op) ... boxes[world - 1, ...]) * scale``, in rank
    order (``scale`` 1 leaves the values untouched). Loops run over views, not offset indices:
    those vectorize (an offset index is several times slower; an array expression allocates)."""
    _copy(out, boxes[0, parity, start:stop])
    n = stop - start
    for q in range(1, world):
        row = boxes[q, parity, start:stop]
        if op == 0:
            for i in range(n):
                out[i] += row[i]
        elif op == 1:
            for i in range(n):
                a, b = out[i], row[i]
                out[i] = a if (a >= b or a != a) else b  # NaN propagates, as in np.maximum
        else:
            for i in range(n):
                a, b = out[i], row[i]
                out[i] = a if (a <= b or a != a) else b
    if scale != 1.0:
        for i in range(n):
            out[i] = out[i] * scale


@njit(nogil=True, cache=True)
def all_reduce(buf, boxes, control, rank, seq, fingerprint, op, scale, small,  # noqa: ANN001, ANN201
               state, deadline_ns, resume):
    """Run (or resume) an all-reduce of the non-empty ``buf`` in place; a :func:`wait` code.

    ``boxes[q, parity]`` is rank ``q``'s mailbox and ``boxes[world, parity]`` the shared result.
    The last sync this rank arrived at is ``seq``. ``state`` (int64[3]) records where a call
    resumes: the next piece's first element, the phase (0: publish the piece, 1: first sync,
    2: second sync) and the last sync number used. ``small`` buffers take the one-sync path;
    the result is multiplied by ``scale`` (``1 / world`` for a mean).
    """
    if not resume:
        state[0], state[1], state[2] = 0, 0, seq
    world, piece, n = boxes.shape[0] - 1, boxes.shape[2], buf.size
    results = boxes[world]
    while state[0] < n:
        start = state[0]
        count = min(n - start, piece)
        if state[1] == 0:  # publish the piece in the mailbox of the next sync's parity
            s = state[2] + 1
            _copy(boxes[rank, s & 1, :count], buf[start:start + count])
            arrive(control, rank, s, fingerprint)
            state[1], state[2] = 1, s
        if state[1] == 1:
            s = state[2]
            code = wait(control, s, fingerprint, deadline_ns)
            if code != DONE:
                return code
            if small:  # every rank reduces the whole buffer from every mailbox
                _reduce_rows(buf[start:start + count], boxes, world, s & 1, 0, count, op, scale)
                state[0], state[1] = start + count, 0
                continue
            lo, hi = rank * count // world, (rank + 1) * count // world
            _reduce_rows(results[(s + 1) & 1, lo:hi], boxes, world, s & 1, lo, hi, op,
                         scale)
            arrive(control, rank, s + 1, fingerprint)
            state[1], state[2] = 2, s + 1
        s = state[2]
        code = wait(control, s, fingerprint, deadline_ns)
        if code != DONE:
            return code
        _copy(buf[start:start + count], results[s & 1, :count])
        state[0], state[1] = start + count, 0
    return DONE


NATIVE_DTYPES = frozenset(np.dtype(t) for t in ("float32", "float64", "int32", "int64"))


def warm_up(dtypes: tuple[str, ...] = ("float32", "float64")) -> None:
    """Load the compiled kernels (compiling them on a first run) for ``dtypes`` now, in one
    process, so that workers forked from it start with them instead of each loading its own."""
    control = np.zeros(LINES + LINE_WORDS, np.int64)
    control[WORLD] = 1
    state = np.zeros(3, np.int64)
    sync(control, 0, 1, 0, 1 << 62, False)
    for dtype in dtypes:
        buf, boxes = np.ones(4, dtype), np.zeros((2, 2, 8), dtype)
        all_reduce(buf, boxes, control, 0, 1, 0, 0, 1.0, True, state, 1 << 62, False)
