"""Device memory: a caching allocator, counted host<->device transfers, and strided device arrays.

* :class:`CachingAllocator` hands out blocks of device memory rounded up to 512 bytes (PyTorch's
  smallest block) and, when a block's last user is gone, keeps it in a free list keyed by its
  size instead of returning it to the driver: the next request of that size reuses it, so a
  training loop that makes the same tensors every step stops calling ``cudaMalloc`` after the
  first. :func:`memory_stats` reports what it holds, hands out and reuses.
* Every copy between host and device goes through :func:`upload` or :func:`download`, which
  count it (:func:`transfers`): the way to see that a step moves only its batch and its loss.
* :class:`DeviceArray` is what a ``cuda`` Tensor holds: a dtype, shape, strides and offset (in
  elements) over one block. Views (reshape, permute, broadcast, basic slicing) are new
  DeviceArrays over the same block, computed on the host as numpy computes them; the block goes
  back to the free list when no view of it is left. Kernels receive :func:`kernel_view`, a
  numba device array of the same layout (a strided view of the block; zero strides broadcast).

Under Numba's CUDA simulator a block is a host array standing in for device memory; everything
else, counting included, is the same.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from .runtime import SIMULATOR, cuda

__all__ = ["CachingAllocator", "ALLOCATOR", "AllocatorStats", "Transfers", "DeviceArray",
           "memory_stats", "transfers", "reset_transfers", "count_transfers", "upload", "download",
           "empty", "kernel_view", "round_size", "MIN_BLOCK"]

MIN_BLOCK = 512  # bytes: every block is a multiple of this (PyTorch's kMinBlockSize)
LARGE_ROUND = 2 << 20  # requests above 16 MiB round to 2 MiB, so near sizes share a free list
LARGE = 16 << 20


def round_size(nbytes: int) -> int:
    """The block size a request of ``nbytes`` gets."""
    unit = LARGE_ROUND if nbytes > LARGE else MIN_BLOCK
    return max(unit, -(-nbytes // unit) * unit)


@dataclass
class AllocatorStats:
    """What the allocator holds (``reserved``: in use plus cached), hands out (``allocated``),
    its peak, and how requests were served: by the driver (``device_mallocs``) or from the cache
    (``cache_hits``)."""

    allocated_bytes: int = 0
    reserved_bytes: int = 0
    peak_allocated_bytes: int = 0
    device_mallocs: int = 0
    cache_hits: int = 0
    releases: int = 0

    @property
    def cached_bytes(self) -> int:
        return self.reserved_bytes - self.allocated_bytes

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"cached_bytes": self.cached_bytes}


class Block:
    """One allocation: ``raw`` device bytes, returned to the allocator's cache when collected."""

    __slots__ = ("raw", "nbytes", "_typed", "_pool")

    def __init__(self, raw: Any, nbytes: int, pool: CachingAllocator) -> None:
        self.raw, self.nbytes, self._pool = raw, nbytes, pool
        self._typed: dict[np.dtype, Any] = {}

    def typed(self, dtype: np.dtype) -> Any:
        """The whole block as a flat numba device array of ``dtype``."""
        view = self._typed.get(dtype)
        if view is None:
            view = self._typed[dtype] = self.raw.view(dtype)
        return view

    def __del__(self) -> None:
        pool = self._pool
        if pool is not None:
            pool._release(self.raw, self.nbytes)


class CachingAllocator:
    """Device memory with a free list per block size (see the module docstring)."""

    def __init__(self) -> None:
        self._free: dict[int, list[Any]] = defaultdict(list)
        self._lock = threading.RLock()
        self.stats = AllocatorStats()

    def malloc(self, nbytes: int) -> Block:
        size = round_size(nbytes)
        with self._lock:
            free = self._free.get(size)
            if free:
                raw = free.pop()
                self.stats.cache_hits += 1
            else:
                raw = self._device_malloc(size)
                self.stats.device_mallocs += 1
                self.stats.reserved_bytes += size
            self.stats.allocated_bytes += size
            self.stats.peak_allocated_bytes = max(self.stats.peak_allocated_bytes,
                                                  self.stats.allocated_bytes)
        return Block(raw, size, self)

    def _device_malloc(self, size: int) -> Any:
        try:
            return cuda.device_array(size, np.uint8)
        except Exception:  # out of memory on a real GPU: give the cache back and try once more
            if SIMULATOR or not any(self._free.values()):
                raise
            self.empty_cache()
            return cuda.device_array(size, np.uint8)

    def _release(self, raw: Any, size: int) -> None:
        with self._lock:
            self._free[size].append(raw)
            self.stats.allocated_bytes -= size
            self.stats.releases += 1

    def empty_cache(self) -> None:
        """Give every cached (unused) block back to the device."""
        with self._lock:
            for size, blocks in self._free.items():
                self.stats.reserved_bytes -= size * len(blocks)
            self._free.clear()

    def reset_peak(self) -> None:
        with self._lock:
            self.stats.peak_allocated_bytes = self.stats.allocated_bytes


ALLOCATOR = CachingAllocator()


def memory_stats() -> dict[str, int]:
    """The caching allocator's statistics (bytes and counts), as PyTorch's
    ``torch.cuda.memory_stats`` gives them."""
    return ALLOCATOR.stats.as_dict()


@dataclass
class Transfers:
    """Host<->device copies: how many and how many bytes, each way."""

    to_device: int = 0
    to_device_bytes: int = 0
    to_host: int = 0
    to_host_bytes: int = 0

    @property
    def count(self) -> int:
        return self.to_device + self.to_host

    @property
    def bytes(self) -> int:
        return self.to_device_bytes + self.to_host_bytes

    def __sub__(self, other: Transfers) -> Transfers:
        return Transfers(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_TRANSFERS = Transfers()


def transfers() -> Transfers:
    """The transfers of this process so far (a snapshot)."""
    return Transfers(**_TRANSFERS.as_dict())


def reset_transfers() -> None:
    for f in fields(_TRANSFERS):
        setattr(_TRANSFERS, f.name, 0)


class TransferDelta:
    """The transfers made since it was opened (``count_transfers``); live while it is open."""

    def __init__(self) -> None:
        self._start = transfers()
        self._end: Transfers | None = None

    def close(self) -> None:
        self._end = transfers()

    @property
    def value(self) -> Transfers:
        return (self._end or transfers()) - self._start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.value, name)


@contextmanager
def count_transfers() -> Iterator[TransferDelta]:
    """``with count_transfers() as t: ...`` then ``t.to_device``, ``t.to_host``, ``t.bytes``."""
    delta = TransferDelta()
    try:
        yield delta
    finally:
        delta.close()


class Flags(NamedTuple):
    """The numpy flags code reads off an array before writing into it or handing it out."""

    c_contiguous: bool
    writeable: bool
    owndata: bool


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(strides))


def _probe(dtype: np.dtype, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """A numpy array with this layout over one element, never read: numpy's view arithmetic
    (reshape, basic indexing) applied to it gives the view's shape, strides and offset."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape,
                                           tuple(s * dtype.itemsize for s in strides))


class DeviceArray:
    """A strided array in device memory (see the module docstring).

    The numpy-shaped surface the engine reads (``shape``, ``dtype``, ``ndim``, ``size``,
    ``base``, ``flags``) costs nothing; reading values (``np.asarray``, ``item``, ``tolist``,
    ``bool``) downloads them, counted. ``bounds`` holds the least and greatest value of an
    integer array when they are known without reading it (uploaded, or made by a kernel with a
    known range), so index checks need no transfer.
    """

    __slots__ = ("block", "dtype", "shape", "strides", "offset", "base", "writeable", "bounds",
                 "_kernel_view", "__weakref__")

    def __init__(self, block: Block, dtype: Any, shape: Sequence[int], strides: Sequence[int] | None = None,
                 offset: int = 0, base: DeviceArray | None = None, writeable: bool = True,
                 bounds: tuple[int, int] | None = None) -> None:
        self.block, self.dtype = block, np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)
        self.strides = _contiguous_strides(self.shape) if strides is None else tuple(map(int, strides))
        self.offset, self.base, self.writeable, self.bounds = int(offset), base, writeable, bounds
        self._kernel_view: Any = None  # made once (the layout never changes)

    # -- what numpy-shaped code reads -------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def c_contiguous(self) -> bool:
        return all(s == c for s, c, n in zip(self.strides, _contiguous_strides(self.shape), self.shape)
                   if n > 1)

    @property
    def flags(self) -> Flags:
        return Flags(self.c_contiguous, self.writeable, self.base is None)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DeviceArray({self.dtype.name}{list(self.shape)})"

    # -- views (no data moves) ------------------------------------------------------------------
    def _view(self, shape: tuple[int, ...], strides: tuple[int, ...], offset: int,
              writeable: bool | None = None) -> DeviceArray:
        return DeviceArray(self.block, self.dtype, shape, strides, offset, self._root(),
                           self.writeable if writeable is None else writeable, self.bounds)

    def _root(self) -> DeviceArray:
        return self if self.base is None else self.base

    def _from_probe(self, probe: np.ndarray, like: np.ndarray, writeable: bool | None = None,
                    drop_last: bool = False) -> DeviceArray:
        moved = probe.__array_interface__["data"][0] - like.__array_interface__["data"][0]
        shape, strides = (probe.shape[:-1], probe.strides[:-1]) if drop_last else (probe.shape,
                                                                                     probe.strides)
        return self._view(shape, tuple(s // self.itemsize for s in strides),
                          self.offset + moved // self.itemsize, writeable)

    def reshape(self, *shape: Any) -> DeviceArray:
        """A view when the layout allows it (as numpy decides), else a contiguous copy."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        probe = _probe(self.dtype, self.shape, self.strides)
        try:
            return self._from_probe(probe.reshape(shape, copy=False), probe)
        except ValueError:
            if self.c_contiguous:  # the shape itself does not fit
                raise
            return self.copy().reshape(shape)

    def transpose(self, axes: Sequence[int] | None = None) -> DeviceArray:
        axes = tuple(reversed(range(self.ndim))) if axes is None else tuple(axes)
        return self._view(tuple(self.shape[a] for a in axes), tuple(self.strides[a] for a in axes),
                          self.offset)

    @property
    def T(self) -> DeviceArray:
        return self.transpose()

    def broadcast_to(self, shape: Sequence[int]) -> DeviceArray:
        """A read-only view repeating size-1 dimensions (stride 0), as ``np.broadcast_to``."""
        probe = _probe(self.dtype, self.shape, self.strides)
        return self._from_probe(np.broadcast_to(probe, tuple(shape)), probe, writeable=False)

    def __getitem__(self, key: Any) -> DeviceArray:
        """Basic indexing (ints, slices, None, Ellipsis): a view. Array indices are refused (the
        ``getitem`` primitive runs them as a gather)."""
        key = key if isinstance(key, tuple) else (key,)
        for k in key:
            if not (k is None or k is Ellipsis or isinstance(k, slice)
                    or (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)))):
                raise IndexError(f"DeviceArray: only basic indexing (ints, slices, None, ...) makes "
                                 f"a view, got {type(k).__name__} in {key!r}")
        probe = _probe(self.dtype, self.shape, self.strides)
        # a trailing new axis keeps numpy from returning a scalar for a full integer index
        tail = (None,) if any(k is Ellipsis for k in key) else (Ellipsis, None)
        return self._from_probe(probe[key + tail], probe, drop_last=True)

    # -- copies (on the device) -------------------------------------------------------------------
    def copy(self) -> DeviceArray:
        """A contiguous copy on the device."""
        from .loops import copy_into

        out = empty(self.shape, self.dtype)
        copy_into(out, self)
        out.bounds = self.bounds
        return out

    def astype(self, dtype: Any) -> DeviceArray:
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self.copy()
        from .loops import copy_into

        out = empty(self.shape, dtype)
        copy_into(out, self)
        return out

    # -- reading values (downloads) -------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        host = download(self)
        return host if dtype is None else host.astype(dtype, copy=False)

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError(f"item(): only one-element arrays convert to a Python scalar, got "
                             f"shape {self.shape}")
        return download(self).item()

    def tolist(self) -> Any:
        return download(self).tolist()

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __reduce__(self) -> Any:  # pickles through the host, and lands on the device again
        return upload, (download(self),)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        """numpy functions that only read the layout work; any other refuses (it would have to
        download the values silently: use ``np.asarray`` to say so)."""
        handled = _ARRAY_FUNCTIONS.get(func)
        if handled is None:
            return NotImplemented
        return handled(*args, **kwargs)


_ARRAY_FUNCTIONS = {
    np.shape: lambda a: a.shape, np.ndim: lambda a: a.ndim, np.size: lambda a: a.size,
    np.broadcast_to: lambda a, shape, subok=False: a.broadcast_to(shape),
    np.reshape: lambda a, shape, *args, **kwargs: a.reshape(shape),
    np.transpose: lambda a, axes=None: a.transpose(axes),
}


def empty(shape: Sequence[int], dtype: Any) -> DeviceArray:
    """A new contiguous device array (its values are whatever the block held)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return DeviceArray(ALLOCATOR.malloc(nbytes), dtype, shape)


def _flat(a: DeviceArray) -> Any:
    """The contiguous elements of ``a`` as a flat numba device array."""
    return a.block.typed(a.dtype)[a.offset:a.offset + a.size]


def upload(host: Any) -> DeviceArray:
    """Copy a host array to a new device array (counted); integer arrays note their bounds."""
    host = np.asarray(host, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    out = empty(host.shape, host.dtype)
    if host.size:
        _flat(out).copy_to_device(host.reshape(-1))
        _TRANSFERS.to_device += 1
        _TRANSFERS.to_device_bytes += host.nbytes
        if host.dtype.kind in "iu":
            out.bounds = (int(host.min()), int(host.max()))
    return out


def download(a: DeviceArray) -> np.ndarray:
    """Copy a device array to a new host array (counted); a strided one is first made contiguous
    on the device, so the bus carries only its elements."""
    if not a.c_contiguous:
        a = a.copy()
    host = np.empty(a.shape, a.dtype)
    if a.size:
        _flat(a).copy_to_host(host.reshape(-1))
        _TRANSFERS.to_host += 1
        _TRANSFERS.to_host_bytes += host.nbytes
    return host


def kernel_view(a: DeviceArray) -> Any:
    """``a`` as a numba device array a kernel can take: same shape and strides, over its block
    (a 0-d array becomes shape (1,)). The view keeps ``a``'s block from going back to the
    allocator while it exists."""
    if a._kernel_view is None:
        a._kernel_view = _numba_view(a)
    return a._kernel_view


def _numba_view(a: DeviceArray) -> Any:
    shape, strides = (a.shape, a.strides) if a.shape else ((1,), (0,))
    nbytes = tuple(s * a.itemsize for s in strides)
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        host = a.block.raw._ary
        view = FakeCUDAArray(np.ndarray(shape, a.dtype, buffer=host, offset=a.offset * a.itemsize,
                                        strides=nbytes))
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        if any(s < 0 for s in strides):  # numba's device arrays start at their lowest address
            return _numba_view(a.copy())
        view = DeviceNDArray(shape, nbytes, a.dtype,
                             gpu_data=a.block.raw.gpu_data.view(a.offset * a.itemsize) if a.size else None)
    view.mlsys_block = a.block
    return view
