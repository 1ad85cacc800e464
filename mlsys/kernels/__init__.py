"""Kernels: where the time goes inside one operator, on the CPU (Numba) and the GPU (numba-cuda).

* :mod:`mlsys.kernels.cpu` — matmul in five stages, reductions, softmax, layer norm, conv2d and
  elementwise ufuncs, registered as the ``"numba"`` device's implementations;
* :mod:`mlsys.kernels.cuda` — CUDA kernels (matmul, reductions, softmax, transpose, elementwise)
  registered as the ``"cuda"`` device's; they run under Numba's CUDA simulator without a GPU;
* :mod:`mlsys.kernels.traffic` — global/shared memory traffic of a CUDA kernel, counted in the
  simulator; :mod:`mlsys.kernels.roofline` — measured peaks, the GPU catalog and the plot.

A Tensor's device selects which implementation of each primitive runs (``Tensor.to(device)``).
On ``"numba"`` its data stays a host numpy array; on ``"cuda"`` it lives in device memory
(:mod:`mlsys.kernels.cuda.memory`: a caching allocator, counted transfers). A primitive without a
kernel falls back to the numpy reference (noted once).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..tensor import DEVICES, _check_device, move_

__all__ = ["DEVICES", "to_device"]


def to_device(tensors: Any, device: str) -> Any:
    """Move a module's parameters and buffers (or an iterable of leaf tensors) to ``device`` in
    place (the same Tensor objects, so an optimizer holding them follows).

    The in-place counterpart of ``Tensor.to(device)``. Returns its argument.
    """
    _check_device(device)
    params: Iterable[Any] = tensors.parameters() if hasattr(tensors, "parameters") else tensors
    for p in params:
        move_(p, device)
    for b in tensors.buffers() if hasattr(tensors, "buffers") else ():
        move_(b, device)
    return tensors
