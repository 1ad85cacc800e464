"""The MPI transport: the same requests over mpi4py, so programs run under ``mpiexec``.

Each message is a fixed-size header (the meta string, checked like the shared-memory transport
does) followed by the payload; MPI's non-overtaking rule keeps the two paired per sender. Every
collective first checks with a non-blocking all-gather that all ranks made the same call. Under
``mlsys run --backend mpi`` (each rank through :mod:`mlsys.comm.mpi_rank`) a rank that raises
aborts the whole job; a rank that hangs makes its peers raise ``CommTimeout``.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import CommTimeout, MismatchError
from .transport import META_BYTES, Reducer, Request, Transport, check_meta, explain_mismatch, parse_meta

HEADER_TAG, PAYLOAD_TAG = 7001, 7002
SIGNATURE_BYTES = 256


def _mpi():  # noqa: ANN202 - the mpi4py module
    try:
        from mpi4py import MPI
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("the MPI transport needs mpi4py and an MPI library: "
                          "pip install 'mlsys[mpi]'") from error
    return MPI


class _Send(Request):
    kind = "send"

    def __init__(self, comm, dst: int, data: np.ndarray, meta: str) -> None:  # noqa: ANN001
        self.peer, self.done = dst, False
        self.header = np.zeros(META_BYTES + 8, np.uint8)
        raw = meta.encode()
        self.header[:8] = np.frombuffer(np.int64(len(raw)).tobytes(), np.uint8)
        self.header[8: 8 + len(raw)] = np.frombuffer(raw, np.uint8)
        self.data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        self.requests = [comm.Isend(self.header, dst, HEADER_TAG),
                         comm.Isend(self.data, dst, PAYLOAD_TAG)]

    def progress(self) -> bool:
        self.done = bool(_mpi().Request.Testall(self.requests))
        return self.done


class _Recv(Request):
    kind = "recv"

    def __init__(self, comm, src: int, rank: int, into: np.ndarray | None,  # noqa: ANN001
                 reduce: Reducer | None, expect: str | None) -> None:
        self.comm, self.peer, self.rank = comm, src, rank
        self.into, self.reduce, self.expect = into, reduce, expect
        self.done, self.result = False, into
        self.header = np.zeros(META_BYTES + 8, np.uint8)
        self.header_req = comm.Irecv(self.header, src, HEADER_TAG)
        self.payload_req = None
        self.buffer: np.ndarray | None = None

    def progress(self) -> bool:
        if self.payload_req is None:
            if not self.header_req.Test():
                return False
            length = int(self.header[:8].view(np.int64)[0])
            meta = self.header[8: 8 + length].tobytes().decode()
            check_meta(meta, self.expect, self.peer, self.rank)
            self.meta = meta
            if self.into is None:
                _, dtype, shape = parse_meta(meta)
                self.into = self.result = np.empty(shape, dtype)
            self.buffer = self.into if self.reduce is None else np.empty_like(self.into)
            self.payload_req = self.comm.Irecv(self.buffer.reshape(-1).view(np.uint8), self.peer,
                                               PAYLOAD_TAG)
        if not self.payload_req.Test():
            return True
        if self.reduce is not None:
            self.reduce(self.into.reshape(-1), self.buffer.reshape(-1))
        self.done = True
        return True


class MPITransport(Transport):
    """Point-to-point requests over an MPI communicator (``COMM_WORLD`` by default)."""

    name = "mpi"

    def __init__(self, comm=None, timeout: float = 60.0) -> None:  # noqa: ANN001
        self.comm = comm if comm is not None else _mpi().COMM_WORLD
        super().__init__(self.comm.Get_rank(), self.comm.Get_size(), timeout)

    def isend(self, dst: int, data: np.ndarray, meta: str) -> Request:
        self.check_peer(dst, "send")
        return _Send(self.comm, dst, data, meta)

    def irecv(self, src: int, into: np.ndarray | None = None, reduce: Reducer | None = None,
              expect: str | None = None) -> Request:
        self.check_peer(src, "recv")
        return _Recv(self.comm, src, self.rank, into, reduce, expect)

    def poll(self, src: int) -> bool:
        return bool(self.comm.Iprobe(source=src, tag=HEADER_TAG))

    def agree(self, signature: str) -> None:
        mine = np.zeros(SIGNATURE_BYTES, np.uint8)
        raw = signature.encode()[:SIGNATURE_BYTES]
        mine[: len(raw)] = np.frombuffer(raw, np.uint8)
        everyone = np.empty((self.world_size, SIGNATURE_BYTES), np.uint8)
        request = self.comm.Iallgather(mine, everyone)
        start = time.monotonic()
        while not request.Test():
            if time.monotonic() - start > self.timeout:
                error = CommTimeout(f"rank {self.rank}: no progress for {self.timeout:g} s in "
                                    f"{signature.split(' ')[0]} (is a rank dead or hung, or in a "
                                    "different collective?)")
                self.abort(str(error))
                raise error
            time.sleep(0 if time.monotonic() - start < 1e-3 else 1e-4)
        for peer, theirs in enumerate(everyone):
            if not np.array_equal(theirs, mine):
                text = theirs.tobytes().rstrip(b"\0").decode(errors="replace")
                raise MismatchError(explain_mismatch(self.rank, signature, peer, text))
