"""The worker processes behind ``DataLoader(num_workers=N)``.

An epoch starts ``N`` processes. Each knows the epoch's batches, and worker ``w`` loads batches
``w, w + N, w + 2N, ...`` in that order, so the main process takes batch ``k`` from worker
``k mod N`` and the batches come out exactly as without workers. Flow control is by credits: a
worker loads a batch only after receiving a credit (an empty message on its own credit pipe); it
starts with ``prefetch_factor`` of them and gets one more each time the main process takes one of
its batches, so it never runs more than ``prefetch_factor`` batches ahead.

Batches travel back as pickled numpy arrays on the worker's own result pipe. Pipes, not shared
memory: nothing outlives a process that dies, and an end of file tells each side the other has
gone, so a worker whose main process is killed exits at its next credit, and the main process
notices a worker that crashed (its pipe closes, or its process sentinel fires) at once. Workers
ignore Ctrl-C (the main process handles it and stops them) and run their BLAS on one thread, as
PyTorch's do.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from .. import random as engine_random
from .collate import collate, gather
from .dataset import Dataset, TensorDataset

_POLL_SECONDS = 1.0  # how often an idle worker checks that its parent is still alive
_GRACE_SECONDS = 1.0  # how long stopping waits for workers to finish their batch before SIGTERM


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker process knows about itself (``get_worker_info()`` inside a worker)."""

    id: int
    num_workers: int
    seed: int
    dataset: Dataset


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This worker's :class:`WorkerInfo`, or ``None`` in the main process."""
    return _worker_info


@dataclass(frozen=True)
class WorkerFailure:
    """An exception raised in a worker, carried to the main process as plain data."""

    worker: int
    pid: int
    where: str  # what the worker was doing: "while loading dataset index 37", "in worker_init_fn"
    exc_type: type[BaseException] | None  # None if the type itself could not be pickled
    type_name: str
    text: str  # the worker's formatted traceback

    def reraise(self) -> None:
        """Raise the worker's exception type (``RuntimeError`` if it cannot be rebuilt)."""
        message = (f"Caught {self.type_name} in DataLoader worker {self.worker} (pid {self.pid}) "
                   f"{self.where}.\nOriginal traceback:\n{self.text}")
        try:
            error = self.exc_type(message) if self.exc_type else None
        except Exception:
            error = None
        if error is None or str(error) != message:  # e.g. KeyError quotes its message
            error = RuntimeError(message)
        raise error


def _failure(exc: BaseException, worker: int, where: str) -> WorkerFailure:
    kind = type(exc)
    try:
        pickle.dumps(kind)
    except Exception:
        kind = None
    return WorkerFailure(worker, os.getpid(), where, kind, type(exc).__name__,
                         "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


class _SampleError(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


def _load(dataset: Dataset, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    if isinstance(dataset, TensorDataset):
        return gather(dataset, indices)
    examples = []
    for i in indices.tolist():
        try:
            examples.append(dataset[i])
        except Exception as exc:
            raise _SampleError(i) from exc
    return collate(examples)


def _seed_everything(seed: int) -> None:
    engine_random.manual_seed(seed)
    np.random.seed(seed % (1 << 32))
    random.seed(seed)


def _await_credit(credits: Connection, parent: int) -> bool:
    """Wait for the next credit; False once the main process has stopped us or gone."""
    while not credits.poll(_POLL_SECONDS):
        if os.getppid() != parent:
            return False
    try:
        credits.recv_bytes()
    except (EOFError, OSError):
        return False
    return True


def _worker_main(dataset: Dataset, batches: Sequence[np.ndarray], info: WorkerInfo,
                 worker_init_fn: Callable[[int], None] | None, credits: Connection, results: Connection,
                 inherited: Sequence[Connection], parent: int) -> None:
    for connection in inherited:  # other workers' pipe ends, copied by fork: keep EOFs working
        connection.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker_info
    _worker_info = info
    _seed_everything(info.seed)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        if worker_init_fn is not None:
            try:
                worker_init_fn(info.id)
            except Exception as exc:
                results.send_bytes(pickle.dumps((None, None, _failure(exc, info.id, "in worker_init_fn"))))
                return
        for number in range(info.id, len(batches), info.num_workers):
            if not _await_credit(credits, parent):
                return
            try:
                message = pickle.dumps((number, _load(dataset, batches[number]), None),
                                       protocol=pickle.HIGHEST_PROTOCOL)
            except _SampleError as error:
                where = f"while loading dataset index {error.index}"
                message = pickle.dumps((number, None, _failure(error.__cause__, info.id, where)))
            except Exception as exc:  # collating or pickling the batch
                where = f"while collating batch {number}"
                message = pickle.dumps((number, None, _failure(exc, info.id, where)))
            results.send_bytes(message)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        return  # the main process stopped reading: it is shutting us down


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped responding"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _stop(processes: list[Any], credits: list[Connection], results: list[Connection]) -> None:
    """End every worker: close the pipes (idle or sending workers exit), then SIGTERM, SIGKILL."""
    for connection in (*credits, *results):
        connection.close()
    deadline = time.monotonic() + _GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.exitcode is None:
            process.terminate()
            process.join(_GRACE_SECONDS)
        if process.exitcode is None:
            process.kill()
            process.join()
        process.close()


class WorkerIterator:
    """One epoch of batches loaded by worker processes, returned in order (see module docs)."""

    def __init__(self, dataset: Dataset, batches: Sequence[np.ndarray],
                 convert: Callable[[tuple[np.ndarray, ...]], Any], *, num_workers: int,
                 prefetch_factor: int, base_seed: int, worker_init_fn: Callable[[int], None] | None,
                 timeout: float, context: Any) -> None:
        self._total, self._next, self._convert = len(batches), 0, convert
        self._workers, self._prefetch, self._timeout = num_workers, prefetch_factor, timeout
        self._processes: list[Any] = []
        self._credits: list[Connection] = []
        self._results: list[Connection] = []
        self._stop = weakref.finalize(self, _stop, self._processes, self._credits, self._results)
        child_ends: list[Connection] = []
        for _ in range(num_workers):
            credit_reader, credit_writer = context.Pipe(duplex=False)
            result_reader, result_writer = context.Pipe(duplex=False)
            self._credits.append(credit_writer)
            self._results.append(result_reader)
            child_ends += [credit_reader, result_writer]
        forked = context.get_start_method() == "fork"
        try:
            for w in range(num_workers):
                mine = child_ends[2 * w:2 * w + 2]
                inherited = [c for c in (*self._credits, *self._results, *child_ends) if c not in mine]
                info = WorkerInfo(w, num_workers, base_seed + w, dataset)
                process = context.Process(
                    target=_worker_main, name=f"mlsys-dataloader-{w}", daemon=True,
                    args=(dataset, batches, info, worker_init_fn, *mine, inherited if forked else [],
                          os.getpid()))
                process.start()
                self._processes.append(process)
        except BaseException:
            self.close()
            raise
        finally:
            for connection in child_ends:
                connection.close()
        for w in range(num_workers):
            for _ in range(min(prefetch_factor, self._batches_of(w))):
                self._credits[w].send_bytes(b"")

    def _batches_of(self, worker: int) -> int:
        return len(range(worker, self._total, self._workers))

    def __iter__(self) -> WorkerIterator:
        return self

    def __len__(self) -> int:
        return self._total - self._next

    def __next__(self) -> Any:
        if self._next >= self._total:
            self.close()
            raise StopIteration
        number, worker = self._next, self._next % self._workers
        got, columns, failure = self._receive(worker, number)
        if failure is not None:
            self.close()
            failure.reraise()
        if got != number:  # cannot happen unless a pipe was corrupted
            self.close()
            raise RuntimeError(f"DataLoader: expected batch {number} from worker {worker}, got {got}")
        self._next += 1
        taken = number // self._workers  # how many of this worker's batches are now taken, minus one
        if taken + self._prefetch < self._batches_of(worker):
            try:
                self._credits[worker].send_bytes(b"")
            except OSError:
                pass  # the worker died: the next receive from it reports how
        return self._convert(columns)

    def _receive(self, worker: int, number: int) -> tuple[Any, Any, WorkerFailure | None]:
        reader, process = self._results[worker], self._processes[worker]
        deadline = time.monotonic() + self._timeout if self._timeout else None
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([reader, process.sentinel], left)
            if reader in ready:
                try:
                    return pickle.loads(reader.recv_bytes())
                except EOFError:
                    process.join(_GRACE_SECONDS)
                    self._fail(f"DataLoader worker {worker} (pid {process.pid}) "
                               f"{_describe_exit(process.exitcode)} before sending batch {number}")
            if process.sentinel in ready:
                process.join(_GRACE_SECONDS)  # reap it, to read its exit code
                self._fail(f"DataLoader worker {worker} (pid {process.pid}) unexpectedly "
                           f"{_describe_exit(process.exitcode)} while loading batch {number}")
            if not ready:
                self._fail(f"DataLoader timed out: no batch {number} from worker {worker} "
                           f"(pid {process.pid}) within timeout={self._timeout} s")

    def _fail(self, message: str) -> None:
        for process in self._processes:  # a stuck or broken epoch: no grace period
            if process.exitcode is None:
                process.terminate()
        self.close()
        raise RuntimeError(message)

    def close(self) -> None:
        """Stop the workers now (also done when the epoch ends, on an error, or when collected)."""
        self._stop()
