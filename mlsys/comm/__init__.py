"""Collective communication between real processes, and distributed training on top of it.

``launch(fn, world_size)`` or ``mlsys run -n N script.py`` start the processes; a
:class:`ProcessGroup` offers send/recv and the collectives over shared memory (default) or MPI;
every collective algorithm is a :class:`~mlsys.comm.schedules.Schedule` (data), the same one the
simulators run on a modelled network, and the shared-memory transport also has a compiled,
GIL-free all-reduce (:mod:`mlsys.comm.native`). :class:`DistributedDataParallel` and the
parameter servers (:func:`parameter_server`, :func:`sharded_parameter_server`) train models on top.

Nothing hangs or leaks: ranks that make different calls raise :class:`MismatchError` naming the
difference, a dead or exited rank makes the others raise :class:`CommAborted` at once, a silent
one :class:`CommTimeout`; the launchers name the failing rank and their workers die with them.
"""

from .ddp import DistributedDataParallel
from .errors import CommAborted, CommError, CommTimeout, MismatchError, WorkerError
from .group import ProcessGroup, algorithms, get_group, init_process_group
from .launcher import launch
from .ps import ServerReport, ServerStats, WorkerReport, parameter_server, sharded_parameter_server
from .schedules import ALGORITHMS, COLLECTIVES, Schedule, Step

__all__ = [
    "ProcessGroup", "init_process_group", "get_group", "launch", "algorithms",
    "Schedule", "Step", "ALGORITHMS", "COLLECTIVES",
    "DistributedDataParallel", "parameter_server", "sharded_parameter_server", "ServerStats",
    "ServerReport", "WorkerReport",
    "CommError", "CommTimeout", "CommAborted", "MismatchError", "WorkerError",
]
