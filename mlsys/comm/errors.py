"""The errors collective communication raises instead of hanging."""

from __future__ import annotations


class CommError(RuntimeError):
    """A collective or point-to-point operation failed."""


class CommTimeout(CommError):
    """A peer did not answer within the group's timeout (it hangs or has died)."""


class CommAborted(CommError):
    """Another rank failed (or died) and aborted the group."""


class MismatchError(CommError, ValueError):
    """Ranks passed buffers of different shapes or dtypes to the same collective."""


class WorkerError(CommError):
    """A launched worker process raised or died; carries its rank and traceback."""

    def __init__(self, rank: int, message: str) -> None:
        super().__init__(f"rank {rank} failed:\n{message}")
        self.rank = rank
