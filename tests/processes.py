"""What a test may leave behind: child processes and shared-memory segments (Linux /proc).

Tests that start processes wrap themselves in :func:`nothing_left_behind`, which compares with
what existed before the test, so long-lived helpers started by other tests in the same pytest
worker (a forkserver, a resource tracker) are not blamed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

SHM_DIR = Path("/dev/shm")


def alive(pid: int | str) -> bool:
    """Whether ``pid`` is running (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def children(of: int | str = "self") -> set[int]:
    """Live child processes of ``of`` (default: this process), from every thread's child list.

    multiprocessing's resource tracker (one per interpreter, started by the first spawned process
    and meant to outlive it) is not counted.
    """
    found = set()
    try:
        tasks = list(Path(f"/proc/{of}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            pids = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        found.update(int(pid) for pid in pids if alive(pid) and not _is_tracker(pid))
    return found


def _is_tracker(pid: str) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False


def segments() -> set[str]:
    """Shared-memory files this project or MPICH could leave (other programs' files are theirs)."""
    if not SHM_DIR.is_dir():
        return set()
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(("mlsys", "mpich_shm_"))}


def gone(pids: set[int] | list[int], within: float = 10.0) -> bool:
    """Wait up to ``within`` seconds for every process in ``pids`` to end."""
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


@contextlib.contextmanager
def nothing_left_behind(within: float = 5.0, what: str = "a child process") -> Iterator[None]:
    """Fail if the body leaves a new child process (after ``within`` s) or a new segment."""
    before_children, before_segments = children(), segments()
    yield
    new = children() - before_children
    assert gone(new, within), f"{what} was left behind: pids {sorted(p for p in new if alive(p))}"
    left = segments() - before_segments
    assert not left, f"left in /dev/shm: {sorted(left)}"
