"""One rank of ``mlsys run --backend mpi``: ``python -m mlsys.comm.mpi_rank MARKS script [args]``.

It runs the script as ``python -m mpi4py`` does (an uncaught exception aborts the whole job at
once instead of leaving the other ranks to time out) and, when the script finishes normally,
leaves the file ``MARKS/<rank>``: MPICH stops every rank and reports success when one rank exits
early with code 0, so the launcher counts the marks. Ctrl-C ends the rank without a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _rank() -> str:
    for variable in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK"):
        if variable in os.environ:
            return os.environ[variable]
    from mpi4py import MPI

    return str(MPI.COMM_WORLD.Get_rank())


def main() -> None:
    from mpi4py.run import run_command_line, set_abort_status

    marks, script = Path(sys.argv[1]), sys.argv[2:]
    try:
        run_command_line(script)
    except SystemExit as done:
        set_abort_status(done)
        if done.code in (None, 0):
            (marks / _rank()).touch()
        raise
    except KeyboardInterrupt as interrupted:
        set_abort_status(interrupted)
        sys.exit(130)
    except BaseException:
        set_abort_status(1)
        raise
    (marks / _rank()).touch()


if __name__ == "__main__":
    main()
