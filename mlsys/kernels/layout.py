"""Layout primitives every device shares: views of host memory need no kernel.

A Tensor's data is a host numpy array on every device, so the view primitives (``reshape``,
``permute``, ``broadcast_to``, slicing) are numpy views (no data moves) whichever device the tensor
is on; registering the reference forward for a device says so, instead of noting a fallback.
"""

from __future__ import annotations

from ..ops.registry import PRIMITIVES


def register_views(device: str) -> None:
    """Use the numpy view of each view primitive (``Primitive.view``) as ``device``'s
    implementation."""
    for prim in PRIMITIVES.values():
        if prim.view:
            prim.impls[device] = prim.forward
