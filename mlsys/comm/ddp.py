"""``DistributedDataParallel``: every rank keeps a replica and gradients are averaged per bucket.

Parameters are grouped into *buckets* of about ``bucket_bytes`` in reverse registration order,
which is roughly the order backward produces their gradients (Li et al., "PyTorch Distributed:
Experiences on Accelerating Data Parallel Training", VLDB 2020). A post-accumulate-grad hook on
every parameter notes when its gradient is ready; once all of a bucket's gradients are, the bucket
is flattened and all-reduced (mean). With ``overlap=True`` a communication thread all-reduces ready
buckets while backward is still computing the remaining gradients: the shared-memory all-reduce is
compiled and runs without the GIL, as numpy's kernels do, so the two proceed in parallel where a
core is free; with ``overlap=False`` all buckets are reduced after the last gradient. Either way,
when ``loss.backward()`` returns every rank holds the same, averaged ``.grad`` (a view of its
reduced bucket: no copy back).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..nn import Module, Parameter
from ..tensor import Tensor
from .group import ProcessGroup, get_group

DEFAULT_BUCKET_BYTES = 1 << 20


def flatten(arrays: Sequence[np.ndarray], dtype: Any = None) -> np.ndarray:
    """One contiguous 1-d copy of ``arrays`` (in order)."""
    return np.concatenate([np.asarray(a, dtype=dtype).reshape(-1) for a in arrays])


def unflatten_into(flat: np.ndarray, arrays: Sequence[np.ndarray]) -> None:
    """Copy consecutive pieces of ``flat`` back into ``arrays`` (which keep their shapes)."""
    offset = 0
    for a in arrays:
        a[...] = flat[offset: offset + a.size].reshape(a.shape)
        offset += a.size
    if offset != flat.size:
        raise ValueError(f"unflatten: {flat.size} elements for arrays holding {offset}")


def bucket_ranges(sizes: Sequence[float], bucket_bytes: float) -> list[range]:
    """Consecutive items of ``sizes`` bytes cut into buckets of at most ``bucket_bytes`` (an item
    larger than that is a bucket of its own), as index ranges: the rule of :func:`make_buckets`
    on sizes alone, which the simulators apply to modelled gradients."""
    if not bucket_bytes > 0:
        raise ValueError(f"bucket_bytes must be a positive number of bytes, got {bucket_bytes!r}")
    ranges, start, size = [], 0, 0.0
    for i, nbytes in enumerate(sizes):
        if i > start and size + nbytes > bucket_bytes:
            ranges.append(range(start, i))
            start, size = i, 0.0
        size += nbytes
    if len(sizes) > start:
        ranges.append(range(start, len(sizes)))
    return ranges


def make_buckets(params: Sequence[Parameter], bucket_bytes: int) -> list[list[Parameter]]:
    """Parameters in reverse order, cut into groups of at most ``bucket_bytes`` (at least one)."""
    ordered = list(reversed(list(params)))
    return [[ordered[i] for i in r]
            for r in bucket_ranges([p.data.nbytes for p in ordered], bucket_bytes)]


class DistributedDataParallel(Module):
    """Wrap ``module`` so that backward leaves gradients averaged over all ranks of ``group``.

    On construction rank 0's parameters are broadcast, so every replica starts equal. Every
    parameter must receive a gradient in each backward (there is no unused-parameter search).
    """

    def __init__(self, module: Module, group: ProcessGroup | None = None,
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES, overlap: bool = True,
                 algorithm: str = "auto") -> None:
        super().__init__()
        self.module = module
        self.group = group if group is not None else get_group()
        self.overlap, self.algorithm = overlap, algorithm
        params = [p for p in module.parameters() if p.requires_grad]
        self.buckets = make_buckets(params, bucket_bytes)
        self._bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b}
        self._pending = [0] * len(self.buckets)
        self._sync = True
        self.reduced_buckets = 0  # how many bucket all-reduces have run (for tests and plots)
        for p in module.parameters():
            self.group.broadcast(p.data, root=0)
        self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._done: queue.Queue[BaseException | int] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._reset()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (no communication) inside this block."""
        self._sync = False
        try:
            yield
        finally:
            self._sync = True

    # -- the gradient hooks -------------------------------------------------------------------
    def _reset(self) -> None:
        self._pending = [len(b) for b in self.buckets]
        self._launched = 0

    def _grad_ready(self, param: Parameter) -> None:
        if not self._sync:
            return
        index = self._bucket_of[id(param)]
        self._pending[index] -= 1
        if self._pending[index] < 0:
            self._reset()
            raise RuntimeError("DistributedDataParallel: a parameter received two gradients in "
                               "one backward; call backward once per step (or use no_sync)")
        if self.overlap:
            while self._launched < len(self.buckets) and not self._pending[self._launched]:
                self._start_thread()
                self._queue.put(self._launched)  # buckets go out in the same order on every rank
                self._launched += 1
        if not any(self._pending):
            self._finish()

    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._communicate, name="ddp-comm",
                                            daemon=True)
            self._thread.start()

    def _communicate(self) -> None:
        while (index := self._queue.get()) is not None:
            try:
                self._reduce_bucket(index)
                self._done.put(index)
            except BaseException as error:  # noqa: BLE001 - re-raised on the training thread
                self._done.put(error)

    def _reduce_bucket(self, index: int) -> None:
        """Average one bucket's gradients; each ``.grad`` becomes a view of the reduced bucket
        (no copy back; PyTorch's ``gradient_as_bucket_view``)."""
        bucket = self.buckets[index]
        flat = flatten([p.grad.data for p in bucket])
        self.group.all_reduce(flat, op="mean", algorithm=self.algorithm)
        offset = 0
        for p in bucket:
            size = p.grad.data.size
            p.grad = Tensor(flat[offset: offset + size].reshape(p.grad.data.shape))
            offset += size
        self.reduced_buckets += 1

    def _finish(self) -> None:
        """Wait for (overlap) or run (no overlap) every bucket's all-reduce."""
        try:
            if self.overlap:
                errors = [r for r in (self._done.get() for _ in self.buckets)
                          if isinstance(r, BaseException)]
                if errors:
                    raise errors[0]
            else:
                for index in range(len(self.buckets)):
                    self._reduce_bucket(index)
        finally:
            self._reset()

    def close(self) -> None:
        """Remove the hooks and stop the communication thread."""
        for handle in self._handles:
            handle.remove()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
