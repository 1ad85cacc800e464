"""``ProcessGroup``: point-to-point and collective operations on numpy arrays and Tensors.

Collectives work in place on the caller's array (as ``torch.distributed`` does) and return it;
Tensors are handled through their ``.data``. Each collective runs a schedule from
:mod:`mlsys.comm.schedules` through :func:`mlsys.comm.executor.execute`, so the algorithm is a
parameter: ``group.all_reduce(x, algorithm="ring")``. With ``algorithm="auto"`` (the default) an
all-reduce runs the transport's compiled implementation where it has one (shared memory: the
GIL-free ``direct`` algorithm of :mod:`mlsys.comm.native`), else a schedule chosen by size.

Every collective first checks that all ranks made the same call (collective, root, reduce op,
algorithm, dtype, shape) and raises :class:`~mlsys.comm.errors.MismatchError` naming the
difference on every rank otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor
from .errors import CommAborted
from .executor import execute
from .schedules import COLLECTIVES, build, chunk_ranges
from .transport import Transport, make_meta, signature

REDUCTIONS = ("sum", "mean", "max", "min")
SMALL_MESSAGE_BYTES = 1 << 16  # below this "auto" picks a latency-optimal schedule
NUMERIC_KINDS = "biufc"


def _array(x: Any, what: str) -> np.ndarray:
    array = x.data if isinstance(x, Tensor) else x
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array or Tensor, got {type(x).__name__}")
    if array.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"{what}: expected an array of numbers, got dtype {array.dtype} "
                        "(collectives move booleans, integers, floats and complex numbers)")
    if not array.flags.c_contiguous:
        raise ValueError(f"{what}: the array must be C-contiguous (use np.ascontiguousarray)")
    return array


class ProcessGroup:
    """The ranks ``0..world_size-1`` talking over one transport."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._schedules: dict[tuple, Any] = {}
        self._native_signatures: dict[tuple, str] = {}

    @property
    def rank(self) -> int:
        return self.transport.rank

    @property
    def world_size(self) -> int:
        return self.transport.world_size

    @property
    def backend(self) -> str:
        return self.transport.name

    def __repr__(self) -> str:
        return f"ProcessGroup(rank={self.rank}, world_size={self.world_size}, {self.backend})"

    # -- point to point ---------------------------------------------------------------------
    def send(self, x: Any, dst: int) -> None:
        """Send ``x`` to rank ``dst`` (returns once it is handed to the transport)."""
        array = _array(x, "send")
        self.transport.wait_all([self.transport.isend(dst, array, make_meta("p2p", array))])

    def recv(self, src: int, out: Any = None) -> np.ndarray:
        """Receive from rank ``src`` into ``out`` (checked for shape and dtype) or a new array."""
        into = None if out is None else _array(out, "recv")
        expect = None if into is None else make_meta("p2p", into)
        request = self.transport.irecv(src, into, None, expect)
        self.transport.wait_all([request])
        return request.result

    # -- collectives ------------------------------------------------------------------------
    def _schedule(self, collective: str, algorithm: str, count: int, **kw: Any):  # noqa: ANN202
        key = (collective, algorithm, count, tuple(kw.items()))
        if key not in self._schedules:
            if len(self._schedules) > 1024:
                self._schedules.clear()
            self._schedules[key] = build(collective, algorithm, self.world_size, count, **kw)
        return self._schedules[key]

    def _run(self, collective: str, algorithm: str, array: np.ndarray, op: str | None = None,
             meta_array: np.ndarray | None = None, **kw: Any) -> np.ndarray:
        _check_op(collective, op, array)
        flat = array.reshape(-1)
        schedule = self._schedule(collective, algorithm, flat.size, **kw)
        mine = array if meta_array is None else meta_array
        self.transport.agree(signature(collective, mine, op=op, algorithm=algorithm, **kw))
        execute(schedule, self.transport, flat, "sum" if op in (None, "mean") else op,
                make_meta(collective, mine))
        if op == "mean":
            flat /= self.world_size
        return array

    def all_reduce(self, x: Any, op: str = "sum", algorithm: str = "auto") -> Any:
        """Reduce ``x`` over all ranks, in place on every rank."""
        array = _array(x, "all_reduce")
        if algorithm == "auto" and self.transport.has_all_reduce(array):
            key = (array.dtype, array.shape, op)
            sig = self._native_signatures.get(key)
            if sig is None:
                _check_op("all_reduce", op, array)
                sig = signature("all_reduce", array, op=op, algorithm="native")
                if len(self._native_signatures) > 1024:
                    self._native_signatures.clear()
                self._native_signatures[key] = sig
            self.transport.all_reduce(array.reshape(-1), op, sig)
            return x
        if algorithm == "auto":
            small = array.nbytes < SMALL_MESSAGE_BYTES
            algorithm = "recursive_doubling" if small else "ring"
        self._run("all_reduce", algorithm, array, op)
        return x

    def reduce(self, x: Any, root: int = 0, op: str = "sum", algorithm: str = "binary_tree") -> Any:
        """Reduce ``x`` onto rank ``root`` (other ranks' arrays are left as scratch)."""
        self._run("reduce", algorithm, _array(x, "reduce"), op, root=_root(root, self))
        return x

    def broadcast(self, x: Any, root: int = 0, algorithm: str = "binary_tree") -> Any:
        """Overwrite ``x`` on every rank with rank ``root``'s ``x``."""
        self._run("broadcast", algorithm, _array(x, "broadcast"), root=_root(root, self))
        return x

    def all_gather(self, x: Any, algorithm: str = "ring") -> np.ndarray:
        """Every rank's ``x`` stacked: an array of shape ``(world_size, *x.shape)``."""
        array = _array(x, "all_gather")
        out = np.empty((self.world_size, *array.shape), array.dtype)
        out[self.rank] = array
        self._run("all_gather", algorithm, out, meta_array=array)
        return out

    def reduce_scatter(self, x: Any, op: str = "sum", algorithm: str = "ring") -> np.ndarray:
        """Reduce ``x`` over ranks and return this rank's block of the flattened result.

        The blocks are :func:`~mlsys.comm.schedules.chunk_ranges` of ``x.size``: equal when the
        size divides by the world size, otherwise earlier ranks get one element more.
        """
        array = _array(x, "reduce_scatter")
        work = array.copy()
        self._run("reduce_scatter", algorithm, work, op)
        start, stop = chunk_ranges(work.size, self.world_size)[self.rank]
        return work.reshape(-1)[start:stop].copy()

    def all_to_all(self, x: Any) -> np.ndarray:
        """Row ``j`` of ``x`` goes to rank ``j``; row ``i`` of the result came from rank ``i``."""
        array = _array(x, "all_to_all")
        if array.ndim == 0 or array.shape[0] != self.world_size:
            raise ValueError(f"all_to_all: expected an array with first dimension "
                             f"{self.world_size} (one row per rank), got shape {array.shape}")
        out = np.empty_like(array)
        out[self.rank] = array[self.rank]
        self.transport.agree(signature("all_to_all", array))
        meta = make_meta("all_to_all", array)
        requests = []
        for peer in range(self.world_size):
            if peer != self.rank:
                row = slice(peer, peer + 1)
                requests.append(self.transport.irecv(peer, out[row], None, meta))
                requests.append(self.transport.isend(peer, array[row], meta))
        self.transport.wait_all(requests)
        return out

    def barrier(self) -> None:
        """Return on every rank only once all ranks have entered the barrier."""
        self.transport.agree("barrier")

    def subgroup(self, ranks: Sequence[int]) -> ProcessGroup:
        """The members ``ranks`` of this group as a group of their own, renumbered in the order
        given (see :mod:`mlsys.comm.subgroup`); made by each member, without communicating."""
        from .subgroup import SubTransport

        return ProcessGroup(SubTransport(self.transport, ranks))

    def abort(self, message: str) -> None:
        """Make every other rank's pending and future operations raise with ``message``."""
        self.transport.abort(message)

    def close(self) -> None:
        self.transport.close()


def _check_op(collective: str, op: str | None, array: np.ndarray) -> None:
    if op is None:
        return
    if op not in REDUCTIONS:
        raise ValueError(f"{collective}: unknown op {op!r}; expected one of {REDUCTIONS}")
    if op == "mean" and array.dtype.kind not in "fc":
        raise TypeError(f"{collective}: op='mean' needs a floating dtype, got {array.dtype}")


def _root(root: Any, group: ProcessGroup) -> int:
    if not isinstance(root, (int, np.integer)) or not 0 <= root < group.world_size:
        raise ValueError(f"root must be a rank in [0, {group.world_size}), got {root!r}")
    return int(root)


_default: ProcessGroup | None = None


def algorithms(collective: str = "all_reduce") -> list[str]:
    """Names of the algorithms available for ``collective``."""
    return sorted(COLLECTIVES[collective])


def init_process_group(backend: str | None = None, timeout: float | None = None) -> ProcessGroup:
    """The group of this process, from the environment ``mlsys run`` or ``mpiexec`` sets up.

    ``backend`` is ``"shm"`` (ranks started by :func:`mlsys.comm.launch` or ``mlsys run``) or
    ``"mpi"`` (ranks started by ``mpiexec``); by default it is read from ``MLSYS_BACKEND`` or
    detected from MPI's environment variables. A second call returns the same group.
    """
    global _default
    if _default is not None:
        return _default
    timeout = float(os.environ.get("MLSYS_COMM_TIMEOUT", 60.0)) if timeout is None else timeout
    if backend is None:
        backend = os.environ.get("MLSYS_BACKEND")
    if backend is None:
        mpi_vars = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MPI_LOCALRANKID")
        backend = "mpi" if any(v in os.environ for v in mpi_vars) else "shm"
    if backend == "shm":
        from .shm import SharedMemoryTransport

        if "MLSYS_SHM_FD" not in os.environ:
            raise RuntimeError("init_process_group('shm'): this process was not started by "
                               "'mlsys run' (MLSYS_SHM_FD is not set)")
        fd = int(os.environ.pop("MLSYS_SHM_FD"))
        try:
            transport: Transport = SharedMemoryTransport.attach(fd, int(os.environ["MLSYS_RANK"]),
                                                                timeout)
        finally:
            os.close(fd)
    elif backend == "mpi":
        from .mpi import MPITransport

        transport = MPITransport(timeout=timeout)
    else:
        raise ValueError(f"unknown backend {backend!r}; expected 'shm' or 'mpi'")
    _default = ProcessGroup(transport)
    _report_failures_to(transport)
    return _default


def _report_failures_to(transport: Transport) -> None:
    """Make an uncaught exception abort the group at once (naming it), and print a rank that
    only stopped because another failed as one line instead of a traceback."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        if isinstance(error, CommAborted):
            print(f"{kind.__name__}: {error}", file=sys.stderr)
            return
        if not isinstance(error, KeyboardInterrupt):
            transport.abort(f"{kind.__name__}: {error}")
        previous(kind, error, tb)

    sys.excepthook = hook


def set_default_group(group: ProcessGroup | None) -> None:
    global _default
    _default = group


def get_group() -> ProcessGroup:
    """The group set up by :func:`init_process_group` or the launcher."""
    if _default is None:
        raise RuntimeError("no process group: call mlsys.comm.init_process_group() first "
                           "(in a process started by 'mlsys run', mlsys.comm.launch or mpiexec)")
    return _default
