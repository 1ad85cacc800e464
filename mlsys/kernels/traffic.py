"""Count the memory traffic of a CUDA kernel run in Numba's CUDA simulator.

Wrap the kernel's global arrays with :func:`tracked` and launch it inside :func:`counting`: every
element load and store is counted, per memory space (``global`` for the wrapped arguments,
``shared`` for ``cuda.shared.array`` buffers). Global accesses are also grouped the way the
hardware coalesces them: the k-th access to an array by each thread of one warp is one warp-wide
instruction, served by one transaction per distinct 32-byte sector it touches (the L2/DRAM access
granularity; CUDA C++ Best Practices Guide, "Coalesced Access to Global Memory"). A warp reading
32 consecutive float32 values needs 4 sectors; reading a column, 32.

Sequence numbers assume every thread of a warp makes the same accesses in the same order
(true for the course's kernels on shapes that are multiples of their tiles).
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Traffic", "tracked", "counting", "SECTOR_BYTES"]

SECTOR_BYTES = 32
WARP = 32


@dataclass
class Traffic:
    """Element loads/stores per memory space, and global-memory transactions (32-byte sectors)."""

    loads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stores: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _sectors: dict[tuple, set] = field(default_factory=lambda: defaultdict(set))
    _seq: dict[tuple, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def transactions(self, kind: str = "load") -> int:
        """Global-memory sector transactions of ``kind`` ("load" or "store")."""
        if kind not in ("load", "store"):
            raise ValueError(f"transactions: kind must be 'load' or 'store', got {kind!r}")
        return sum(len(s) for key, s in self._sectors.items() if key[0] == kind)

    def summary(self) -> dict[str, int]:
        """Counts as one flat dict (for tables)."""
        out = {}
        for space in ("global", "shared"):
            out[f"{space}_loads"] = self.loads.get(space, 0)
            out[f"{space}_stores"] = self.stores.get(space, 0)
        out["load_transactions"] = self.transactions("load")
        out["store_transactions"] = self.transactions("store")
        out["global_bytes"] = self.bytes.get("global", 0)
        return out

    def record(self, space: str, kind: str, array: np.ndarray, index: Any) -> None:
        thread = threading.current_thread()
        with self._lock:
            (self.loads if kind == "load" else self.stores)[space] += 1
            self.bytes[space] += array.itemsize
            if space != "global":
                return
            block = getattr(thread, "blockIdx", None)
            block = None if block is None else (block.x, block.y, block.z)
            tid = getattr(thread, "thread_id", 0)
            key = (kind, id(array), block, tid // WARP)
            seq_key = (kind, id(array), block, tid)
            seq = self._seq[seq_key]
            self._seq[seq_key] = seq + 1
            offset = _byte_offset(array, index)
            self._sectors[(*key, seq)].add(offset // SECTOR_BYTES)


def _byte_offset(array: np.ndarray, index: Any) -> int:
    idx = index if isinstance(index, tuple) else (index,)
    if len(idx) != array.ndim or not all(isinstance(i, (int, np.integer)) for i in idx):
        raise TypeError(f"traffic: kernels must index tracked arrays with {array.ndim} integers, "
                        f"got {index!r}")
    return int(sum(int(i) % n * s for i, n, s in zip(idx, array.shape, array.strides)))


_active: list[Traffic] = []


class Tracked:
    """A numpy array that reports each element access to the active :class:`Traffic` log."""

    def __init__(self, array: np.ndarray, space: str = "global") -> None:
        self.array, self.space = array, space
        self.shape, self.dtype, self.size, self.ndim = array.shape, array.dtype, array.size, array.ndim

    def __getitem__(self, index: Any) -> Any:
        if _active:
            _active[-1].record(self.space, "load", self.array, index)
        return self.array[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        if _active:
            _active[-1].record(self.space, "store", self.array, index)
        self.array[index] = value

    def __len__(self) -> int:
        return len(self.array)


def tracked(array: np.ndarray) -> Tracked:
    """Wrap a contiguous host array so a simulated kernel's accesses to it are counted."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"tracked: expected a numpy array, got {type(array).__name__}")
    return Tracked(np.ascontiguousarray(array))


@contextmanager
def counting() -> Iterator[Traffic]:
    """Count the traffic of simulated kernel launches made inside the ``with`` block.

    Shared-memory buffers the kernels allocate are wrapped too. Raises when CUDA kernels run on
    a real GPU, where Python cannot see individual accesses.
    """
    from .cuda.runtime import SIMULATOR

    if not SIMULATOR:
        raise RuntimeError("counting(): traffic is counted in the CUDA simulator; set "
                           "NUMBA_ENABLE_CUDASIM=1 before mlsys.kernels.cuda is imported")
    from numba.core import types
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.np.numpy_support import as_dtype

    log = Traffic()
    original = FakeCUDAShared.array

    def shared_array(self: Any, shape: Any, dtype: Any, alignment: Any = None) -> Tracked:
        # One buffer per allocating source line and block, as in the simulator (which keys on
        # its direct caller, so it cannot simply be wrapped).
        if shape == 0 or alignment is not None:
            return Tracked(original(self, shape, dtype, alignment), "shared")
        frame = sys._getframe(1)
        np_dtype = as_dtype(dtype) if isinstance(dtype, types.Type) else np.dtype(dtype)
        key = (frame.f_code.co_filename, frame.f_lineno)
        return Tracked(self._allocations.setdefault(key, np.empty(shape, np_dtype)), "shared")

    FakeCUDAShared.array = shared_array
    _active.append(log)
    try:
        yield log
    finally:
        _active.pop()
        FakeCUDAShared.array = original
