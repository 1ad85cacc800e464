"""Elementwise CUDA kernels: one thread per element, and a fused bias + ReLU.

``map_kernel(name)`` builds a kernel applying one primitive's scalar function to contiguous
(already broadcast) float32 operands. ``bias_relu`` shows what fusion buys: ``relu(x + bias)`` as
two kernels writes ``x + bias`` to global memory and reads it back; fused, each element is read
once and written once, the intermediate living in a register.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from .runtime import cuda, launch_1d, to_device

__all__ = ["SCALAR", "BLOCK", "map_kernel", "apply", "bias_relu_kernel", "bias_relu"]

BLOCK = 128


def _device(fn: Callable) -> Callable:
    return cuda.jit(device=True)(fn)


# primitive name -> scalar device function; arity follows the primitive
SCALAR: dict[str, Callable] = {
    "add": _device(lambda a, b: a + b), "sub": _device(lambda a, b: a - b),
    "mul": _device(lambda a, b: a * b), "div": _device(lambda a, b: a / b),
    "maximum": _device(lambda a, b: max(a, b)), "neg": _device(lambda x: -x),
    "exp": _device(lambda x: math.exp(x)), "log": _device(lambda x: math.log(x)),
    "tanh": _device(lambda x: math.tanh(x)), "relu": _device(lambda x: max(x, 0.0)),
}
ARITY = {"add": 2, "sub": 2, "mul": 2, "div": 2, "maximum": 2}


@functools.cache
def map_kernel(name: str) -> Callable:
    """A kernel ``(inputs..., out)`` applying primitive ``name`` to each element."""
    fn = SCALAR[name]
    if ARITY.get(name, 1) == 2:

        @cuda.jit
        def binary(a, b, out):
            i = cuda.grid(1)
            if i < out.shape[0]:
                out[i] = fn(a[i], b[i])

        return binary

    @cuda.jit
    def unary(x, out):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = fn(x[i])

    return unary


def apply(name: str, *arrays: np.ndarray) -> np.ndarray:
    """Primitive ``name`` on float32 arrays, broadcast on the host, computed on the device."""
    if name not in SCALAR:
        raise ValueError(f"apply: no CUDA scalar function for {name!r}; have {', '.join(SCALAR)}")
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = [np.broadcast_to(a, shape).reshape(-1) for a in arrays]
    size = int(np.prod(shape, dtype=np.int64))
    out = cuda.device_array(size, np.float32)
    if size:
        blocks, threads = launch_1d(size, BLOCK)
        map_kernel(name)[blocks, threads](*to_device(*flat), out)
    return out.copy_to_host().reshape(shape)


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
    out = cuda.device_array(x.size, np.float32)
    blocks, threads = launch_1d(x.size, BLOCK)
    bias_relu_kernel[blocks, threads](*to_device(x.reshape(-1), bias.astype(np.float32)), out)
    return out.copy_to_host().reshape(x.shape)
