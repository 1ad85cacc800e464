"""Run comm_checks' checks in order on every rank: python mpi_entry.py NAME [NAME...]."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from comm_checks import CHECKS  # noqa: E402

from mlsys.comm import init_process_group  # noqa: E402

if __name__ == "__main__":
    group = init_process_group()
    for name in sys.argv[1:]:
        print(f"rank {group.rank}: {name} {CHECKS[name](group)}", flush=True)
