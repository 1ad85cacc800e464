"""Pick a real GPU or Numba's CUDA simulator, once, before ``numba.cuda`` is imported.

``NUMBA_ENABLE_CUDASIM`` decides when it is set. Otherwise the simulator is switched on when this
machine has no CUDA driver, so CUDA kernels run everywhere: on a GPU when there is one, and as
Python threads (one per CUDA thread, about a second per 256-thread block) when there is not.
``numba.cuda`` picks the simulator from Numba's configuration when it is imported, so the variable
is set and the configuration reloaded just for that import, then both are restored: nothing else
in the process (or its child processes) sees the variable.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Sequence

import numba.core.config
import numpy as np

__all__ = ["cuda", "SIMULATOR", "WARP", "gpu_present", "launch_1d", "grid_2d",
           "stride_launch", "SIMULATOR_THREADS"]


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA driver (without initialising CUDA)."""
    return ctypes.util.find_library("cuda") is not None or os.path.exists("/dev/nvidiactl")


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    numba.core.config.reload_config()
    try:
        from numba import cuda
    finally:
        del os.environ["NUMBA_ENABLE_CUDASIM"]
        numba.core.config.reload_config()
else:
    from numba import cuda

# what was imported decides (``numba.cuda`` may have been imported before this module)
SIMULATOR: bool = cuda.jit.__module__.startswith("numba.cuda.simulator")
if not SIMULATOR and not gpu_present():
    raise ImportError("mlsys.kernels.cuda: numba.cuda was imported without the simulator on a "
                      "machine with no CUDA driver; set NUMBA_ENABLE_CUDASIM=1 before importing "
                      "numba.cuda")



def _ieee_threads() -> None:
    """Run the simulator's CUDA threads with numpy's floating-point warnings off: a GPU computes
    ``1/0`` and ``inf - inf`` silently (IEEE), and numpy's error state is per thread, so the
    launching thread's ``np.errstate`` does not reach them."""
    from numba.cuda.simulator.kernel import BlockThread

    if getattr(BlockThread, "_mlsys_ieee", False):
        return
    run = BlockThread.run

    def quiet_run(self: BlockThread) -> None:
        with np.errstate(all="ignore"):
            run(self)

    BlockThread.run = quiet_run
    BlockThread._mlsys_ieee = True


if SIMULATOR:
    from .simwarp import install as _install_warp_shuffles

    _install_warp_shuffles()
    _ieee_threads()

WARP = 32
# Grid-stride kernels get four threads in the simulator: it starts an OS thread per CUDA thread
# and switches between them under the GIL, so a few threads each looping over more elements run
# the same kernel sooner (an MLP step on 4 takes a third of the time it takes on 32).
SIMULATOR_THREADS = 4


def launch_1d(size: int, block: int) -> tuple[int, int]:
    """``(blocks, threads)`` covering ``size`` elements: whole warps, at most ``block`` threads.

    Small arrays get fewer threads, which matters most under the simulator (a thread each).
    """
    threads = min(block, WARP * max(1, -(-size // WARP)))
    return max(1, -(-size // threads)), threads


def grid_2d(rows: int, cols: int, block: Sequence[int]) -> tuple[int, int]:
    """Blocks along (x = columns, y = rows) for a ``block`` of (x, y) threads each owning one cell."""
    return -(-cols // block[0]), -(-rows // block[1])


def stride_launch(size: int, threads: int = 256) -> tuple[int, int]:
    """``(blocks, threads)`` for a grid-stride kernel over ``size`` items: on a GPU enough blocks
    to cover them (at most 32 per multiprocessor; the loop covers the rest), in the simulator
    :data:`SIMULATOR_THREADS`."""
    if SIMULATOR:
        return 1, min(SIMULATOR_THREADS, max(1, size))
    return max(1, min(-(-size // threads), 32 * _multiprocessors())), threads


_SMS: list[int] = []


def _multiprocessors() -> int:
    if not _SMS:
        _SMS.append(int(cuda.get_current_device().MULTIPROCESSOR_COUNT))
    return _SMS[0]
