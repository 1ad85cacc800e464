"""Checkpoint and restart a distributed run: survive a killed rank, resume where it left off.

:class:`Checkpointer` saves each rank's state (any picklable mapping: a model's and optimizer's
``state_dict``, a ZeRO rank's shards) into one folder per step. A checkpoint counts only once it
is *complete*: every rank writes its file under a temporary name and renames it into place, all
ranks meet at a barrier, then rank 0 writes the step's marker (also by rename). A rank killed in
the middle of a save leaves no marker, so a restart never loads a partial checkpoint.

:func:`run_with_restarts` launches a training function on ``world_size`` processes and, when a
rank dies (the launcher stops the others at once, no process or segment is left behind), launches
it again: the function loads the latest complete checkpoint and carries on. A synchronous run
(data parallel, ZeRO, pipeline, BSP parameter server) is deterministic given its step number, so
the restarted run ends with bitwise the parameters of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..comm.errors import WorkerError
from ..comm.group import ProcessGroup
from ..comm.launcher import launch

__all__ = ["Checkpointer", "run_with_restarts", "Attempt", "Restarts", "crash"]

MARKER = "complete.json"


class Checkpointer:
    """Complete, atomic checkpoints of ``group``'s ranks in ``directory`` (the newest ``keep``)."""

    def __init__(self, directory: str | os.PathLike, group: ProcessGroup, keep: int = 2) -> None:
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"Checkpointer: keep must be a positive integer, got {keep!r}")
        self.directory, self.group, self.keep = Path(directory), group, keep
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seconds: list[float] = []  # how long each save took on this rank

    def _folder(self, step: int) -> Path:
        return self.directory / f"step-{step:08d}"

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Write this rank's ``state`` for ``step``; every rank must call (a collective)."""
        start = time.perf_counter()
        folder = self._folder(step)
        folder.mkdir(exist_ok=True)
        _write_atomically(folder / f"rank-{self.group.rank}.pkl",
                          pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        self.group.barrier()  # every rank's file is in place
        if self.group.rank == 0:
            _write_atomically(folder / MARKER, json.dumps(
                {"step": step, "world_size": self.group.world_size}).encode())
            for old in self.complete()[:-self.keep]:
                shutil.rmtree(self._folder(old), ignore_errors=True)
        self.seconds.append(time.perf_counter() - start)

    def complete(self) -> list[int]:
        """Steps with a complete checkpoint for this group's size, oldest first."""
        steps = []
        for marker in self.directory.glob(f"step-*/{MARKER}"):
            info = json.loads(marker.read_text())
            if info["world_size"] == self.group.world_size:
                steps.append(int(info["step"]))
        return sorted(steps)

    def load(self) -> tuple[int, dict[str, Any] | None]:
        """``(step, this rank's state)`` of the newest complete checkpoint, or ``(0, None)``."""
        steps = self.complete()
        if not steps:
            return 0, None
        with open(self._folder(steps[-1]) / f"rank-{self.group.rank}.pkl", "rb") as f:
            return steps[-1], pickle.load(f)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def crash() -> None:
    """Kill this process at once (SIGKILL: no cleanup, as a machine failure would)."""
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Attempt:
    """One launch: how long it ran and which rank failed (None: it finished)."""

    seconds: float
    failed_rank: int | None


@dataclass
class Restarts:
    """The finished attempt's results by rank, and every attempt."""

    results: list[Any]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(a.failed_rank is not None for a in self.attempts)

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)


def run_with_restarts(fn: Callable[..., Any], world_size: int, *args: Any, max_restarts: int = 3,
                      timeout: float = 60.0) -> Restarts:
    """Run ``fn(group, attempt, *args)`` on ``world_size`` processes until an attempt finishes,
    relaunching after a rank fails (at most ``max_restarts`` times)."""
    if not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(f"run_with_restarts: max_restarts must be a non-negative integer, got "
                         f"{max_restarts!r}")
    attempts: list[Attempt] = []
    for attempt in range(max_restarts + 1):
        start = time.perf_counter()
        try:
            results = launch(fn, world_size, attempt, *args, timeout=timeout)
        except WorkerError as error:
            attempts.append(Attempt(time.perf_counter() - start, error.rank))
            continue
        attempts.append(Attempt(time.perf_counter() - start, None))
        return Restarts(results, attempts)
    raise RuntimeError(f"run_with_restarts: {max_restarts + 1} attempts all failed (ranks "
                       f"{[a.failed_rank for a in attempts]})")
