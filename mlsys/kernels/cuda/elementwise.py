"""Elementwise CUDA kernels generated from the registry, and a fused bias + ReLU.

``map_kernel(prim, params)`` is the kernel applying an elementwise primitive's scalar template to
contiguous (already broadcast) one-dimensional operands, written by the loop generator of
:mod:`mlsys.kernels.cuda.loops` (the one behind every elementwise op of the ``cuda`` device);
``apply`` runs it on host arrays, one thread per element.

``bias_relu`` shows what fusion buys: ``relu(x + bias)`` as two kernels writes ``x + bias`` to
global memory and reads it back; fused, each element is read once and written once, the
intermediate living in a register.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...ops.registry import PRIMITIVES, Primitive, Spec
from .loops import elementwise_kernel
from .memory import download, empty, kernel_view, upload
from .runtime import cuda, launch_1d

__all__ = ["BLOCK", "map_kernel", "apply", "bias_relu_kernel", "bias_relu"]

BLOCK = 128


def map_kernel(prim: Primitive | str, params: tuple = ()) -> Callable:
    """A kernel ``(inputs..., out)`` applying elementwise ``prim`` (or its name), with ``params``
    as sorted items, to each element of one-dimensional operands."""
    prim = _elementwise(prim)
    return elementwise_kernel(prim, tuple(params), (True,) * prim.arity, 1)


def _elementwise(prim: Primitive | str) -> Primitive:
    if isinstance(prim, Primitive):
        return prim
    if prim not in PRIMITIVES or not PRIMITIVES[prim].elementwise:
        names = ", ".join(n for n, p in PRIMITIVES.items() if p.elementwise)
        raise ValueError(f"no CUDA scalar function for {prim!r}; elementwise primitives: {names}")
    return PRIMITIVES[prim]


def apply(prim: Primitive | str, *arrays: np.ndarray, **params: Any) -> np.ndarray:
    """Elementwise primitive ``prim`` (or its name) on host arrays, broadcast on the host,
    computed on the device (the copies counted as transfers)."""
    prim = _elementwise(prim)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    out_dtype = prim.shape(*[Spec((), a.dtype) for a in arrays], **params).dtype
    size = int(np.prod(shape, dtype=np.int64))
    out = empty((size,), out_dtype)
    if size:
        flat = [kernel_view(upload(np.broadcast_to(a, shape).reshape(-1))) for a in arrays]
        blocks, threads = launch_1d(size, BLOCK)
        map_kernel(prim, tuple(sorted(params.items())))[blocks, threads](*flat, kernel_view(out))
    return download(out).reshape(shape)


@cuda.jit
def bias_relu_kernel(x, bias, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = max(x[i] + bias[i % bias.shape[0]], 0.0)


def bias_relu(x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``relu(x + bias)`` for a float32 ``(n, m)`` array and ``(m,)`` bias, in one kernel."""
    if x.ndim != 2 or bias.shape != (x.shape[1],) or x.dtype != np.float32:
        raise ValueError(f"bias_relu: expected float32 (n, m) and (m,), got {x.dtype}{list(x.shape)}"
                         f" and {list(bias.shape)}")
    out = empty((x.size,), np.float32)
    blocks, threads = launch_1d(x.size, BLOCK)
    bias_relu_kernel[blocks, threads](kernel_view(upload(x.reshape(-1))),
                                      kernel_view(upload(bias.astype(np.float32))), kernel_view(out))
    return download(out).reshape(x.shape)
