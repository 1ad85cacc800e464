"""``DataLoader``: batches of a dataset as Tensors, shaped like ``torch.utils.data.DataLoader``.

Batches come from a seeded order (shuffled or not), in the main process or, with
``num_workers > 0``, from worker processes (:mod:`mlsys.data.workers`) that load up to
``prefetch_factor`` batches each ahead of the training loop. The order of the batches and their
contents do not depend on ``num_workers``: only where and when they are loaded does.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections.abc import Callable, Iterator

import numpy as np

from ..tensor import Tensor
from .collate import gather
from .dataset import Dataset
from .workers import WorkerIterator


def _to_tensors(columns: tuple[np.ndarray, ...]) -> tuple[Tensor, ...]:
    return tuple(Tensor(column) for column in columns)


def _default_context() -> multiprocessing.context.BaseContext:
    # fork on Linux, as PyTorch does: workers start in milliseconds and inherit datasets and
    # classes defined in a notebook; elsewhere the platform's default (spawn on macOS, Windows)
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class DataLoader:
    """Batches of ``dataset`` as tuples of Tensors, reproducible from ``seed`` alone.

    Each epoch (each ``iter()``) draws a new order from the loader's own generator. With
    ``num_workers > 0``, that many processes start for the epoch; worker ``w`` loads batches
    ``w, w + num_workers, ...`` and keeps at most ``prefetch_factor`` of them ready (default 2),
    and the batches are returned in order. Each worker seeds ``mlsys.manual_seed``, numpy's and
    Python's global generators with its own seed (``get_worker_info().seed``: a base drawn per
    epoch from ``seed``, plus the worker's id), then calls ``worker_init_fn(worker_id)``. An error
    in a worker is raised in the main process with the worker, the dataset index and the
    worker's traceback; a worker that dies, or no batch within ``timeout`` seconds (if > 0), is
    an error too. Workers stop when the epoch ends, the loop breaks, or the iterator is
    collected.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = 0, *, num_workers: int = 0,
                 prefetch_factor: int | None = None, worker_init_fn: Callable[[int], None] | None = None,
                 timeout: float = 0.0,
                 multiprocessing_context: str | multiprocessing.context.BaseContext | None = None) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__, got {dataset!r}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(num_workers, (int, np.integer)) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an integer >= 0, got {num_workers!r}")
        if prefetch_factor is not None and num_workers == 0:
            raise ValueError(f"DataLoader: prefetch_factor={prefetch_factor!r} needs num_workers > 0 "
                             "(without workers nothing is loaded ahead)")
        prefetch_factor = 2 if prefetch_factor is None else prefetch_factor
        if not isinstance(prefetch_factor, (int, np.integer)) or prefetch_factor < 1:
            raise ValueError("DataLoader: prefetch_factor must be a positive integer, "
                             f"got {prefetch_factor!r}")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got {worker_init_fn!r}")
        if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout < 0:
            raise ValueError(f"DataLoader: timeout must be finite seconds >= 0 (0: wait forever), "
                             f"got {timeout!r}")
        if isinstance(multiprocessing_context, str):
            methods = multiprocessing.get_all_start_methods()
            if multiprocessing_context not in methods:
                raise ValueError(f"DataLoader: multiprocessing_context must be one of {methods}, "
                                 f"got {multiprocessing_context!r}")
            multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.num_workers, self.prefetch_factor = int(num_workers), int(prefetch_factor)
        self.worker_init_fn, self.timeout = worker_init_fn, float(timeout)
        self.multiprocessing_context = multiprocessing_context or _default_context()
        self.generator = np.random.default_rng(seed)  # the order of the examples
        # workers' seeds: a stream of its own, so the order is the same for any num_workers
        self.worker_seeds = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self) -> list[np.ndarray]:
        """The next epoch's batches of dataset indices (draws its order from the generator)."""
        n = len(self.dataset)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        cut = n - n % self.batch_size if self.drop_last else n
        return [order[start:start + self.batch_size] for start in range(0, cut, self.batch_size)]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        batches = self.batches()
        if self.num_workers == 0:
            return (_to_tensors(gather(self.dataset, idx)) for idx in batches)
        return WorkerIterator(self.dataset, batches, _to_tensors, num_workers=self.num_workers,
                              prefetch_factor=self.prefetch_factor,
                              base_seed=int(self.worker_seeds.integers(1 << 62)),
                              worker_init_fn=self.worker_init_fn, timeout=self.timeout,
                              context=self.multiprocessing_context)
