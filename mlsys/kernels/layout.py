"""Layout primitives every device shares: views of host memory need no kernel.

A Tensor's data is a host numpy array on every device, so ``reshape``, ``permute`` and
``broadcast_to`` are numpy views (no data moves) whichever device the tensor is on; registering the
reference forward for a device says so, instead of noting a fallback.
"""

from __future__ import annotations

from ..ops.registry import PRIMITIVES

VIEWS = ("reshape", "permute", "broadcast_to")


def register_views(device: str) -> None:
    """Use the numpy view of each layout primitive as ``device``'s implementation."""
    for name in VIEWS:
        PRIMITIVES[name].impls[device] = PRIMITIVES[name].forward
