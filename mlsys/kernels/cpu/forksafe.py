"""Numba's parallel kernels in processes made by ``fork``.

Numba runs ``prange`` loops on its threading layer, on Linux GNU OpenMP, whose thread pool does not
survive ``fork``: a child forked after its parent started the pool aborts ("Terminating: fork()
called from a process already using GNU OpenMP, this is unsafe.") the first time it runs a
parallel loop. DataLoader workers and ``mlsys.comm`` ranks are forked. PyTorch, whose intra-op
pool has the same limit, runs single-threaded in such children; so do these kernels:
:func:`usable` hands back a serial compilation of a parallel kernel there, and the kernels run in
the parent's pool everywhere else.
"""

from __future__ import annotations

import os
from typing import Any

import numba
from numba.np.ufunc import parallel as _layer

__all__ = ["forked_after_threads", "usable"]

_forked_after_threads = False
_serial: dict[Any, Any] = {}


def _after_fork_in_child() -> None:
    global _forked_after_threads
    _forked_after_threads = _forked_after_threads or bool(_layer._is_initialized)


os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_after_threads() -> bool:
    """Whether this process was forked (at any depth) from one whose Numba thread pool had started:
    then a parallel loop here would abort the process."""
    return _forked_after_threads


def usable(kernel: Any) -> Any:
    """``kernel`` (a Numba dispatcher, maybe ``parallel=True``), or where parallel loops would abort
    (:func:`forked_after_threads`) the same function compiled serially (once, not cached on
    disk: Numba's cache would not tell the two compilations apart)."""
    if not _forked_after_threads or not kernel.targetoptions.get("parallel"):
        return kernel
    serial = _serial.get(kernel)
    if serial is None:
        options = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
        serial = _serial[kernel] = numba.njit(**options)(kernel.py_func)
    return serial
