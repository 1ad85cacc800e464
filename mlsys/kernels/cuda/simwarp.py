"""Warp shuffles for Numba's CUDA simulator, which has none.

``cuda.shfl_down_sync(mask, value, delta)`` gives each lane the ``value`` of lane
``lane + delta`` of its warp (its own value past the end of the warp). In the simulator every
CUDA thread is a Python thread, so a shuffle is an exchange through a per-warp slot list between
two barriers. A warp whose threads do not all reach the shuffle is a divergence bug on a real GPU;
here the barrier times out with an error instead of hanging.
"""

from __future__ import annotations

import threading
from typing import Any

WARP = 32
TIMEOUT_S = 60.0


class _WarpState:
    def __init__(self, lanes: int) -> None:
        self.values: list[Any] = [None] * lanes
        self.barrier = threading.Barrier(lanes, timeout=TIMEOUT_S)


def _warp_of(module: Any) -> tuple[_WarpState, int]:
    """The calling thread's warp exchange and its lane, created on first use per warp."""
    thread = threading.current_thread()
    bdim = module.blockDim
    tid = thread.threadIdx.x + bdim.x * (thread.threadIdx.y + bdim.y * thread.threadIdx.z)
    warp, lane = divmod(tid, WARP)
    key = (thread.blockIdx.x, thread.blockIdx.y, thread.blockIdx.z, warp)
    with module._warp_lock:
        state = module._warps.get(key)
        if state is None:
            lanes = min(WARP, bdim.x * bdim.y * bdim.z - warp * WARP)
            state = module._warps[key] = _WarpState(lanes)
    return state, lane


def _shfl_down_sync(self: Any, mask: int, value: Any, delta: int) -> Any:
    state, lane = _warp_of(self)
    state.values[lane] = value
    try:
        state.barrier.wait()
        src = lane + delta
        out = state.values[src] if src < len(state.values) else value
        state.barrier.wait()
    except threading.BrokenBarrierError:
        raise RuntimeError(f"shfl_down_sync: not every lane of the warp reached the shuffle "
                           f"within {TIMEOUT_S:.0f} s (divergent shuffle)") from None
    return out


def install() -> None:
    """Add ``shfl_down_sync`` to the simulator's fake ``cuda`` module (idempotent)."""
    from numba.cuda.simulator.kernelapi import FakeCUDAModule

    if getattr(FakeCUDAModule, "_mlsys_shuffles", False):
        return
    original_init = FakeCUDAModule.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._warps, self._warp_lock = {}, threading.Lock()

    FakeCUDAModule.__init__ = __init__
    FakeCUDAModule.shfl_down_sync = _shfl_down_sync
    FakeCUDAModule._mlsys_shuffles = True
