"""Elementwise CUDA kernels generated from the registry, and a fused bias + ReLU.

``map_kernel(prim, params)`` writes a kernel applying an elementwise primitive's scalar template
to contiguous (already broadcast) operands, one thread per element, and compiles it with
``cuda.jit``. The template's functions are CUDA's libdevice math on a GPU; under the simulator,
which runs kernels as Python, they are numpy's, so ``log(0)`` is ``-inf`` and ``exp(1000)`` is
``inf`` as on the GPU (Python's ``math`` would raise instead).

``bias_relu`` shows what fusion buys: ``relu(x + bias)`` as two kernels writes ``x + bias`` to
global memory and reads it back; fused, each element is read once and written once, the
intermediate living in a register.
"""

from __future__ import annotations

import functools
import linecache
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...ops.registry import PRIMITIVES, SCALAR_FUNCTIONS, Primitive, Spec
from .runtime import SIMULATOR, cuda, launch_1d, to_device

__all__ = ["BLOCK", "map_kernel", "apply", "bias_relu_kernel", "bias_relu"]

BLOCK = 128


def _quiet(fn: Callable) -> Callable:
    def call(x):
        with np.errstate(all="ignore"):
            return fn(x)

    return call


def _functions() -> dict[str, Callable]:
    """What a template's function names mean in a kernel on this machine."""
    if not SIMULATOR:
        return {name: getattr(math, name) for name in SCALAR_FUNCTIONS}
    ieee = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt, "tanh": np.tanh}
    return {name: _quiet(ieee[name]) if name in ieee else getattr(math, name)
            for name in SCALAR_FUNCTIONS}


def map_kernel(prim: Primitive | str, params: tuple = ()) -> Callable:
    """A kernel ``(inputs..., out)`` applying elementwise ``prim`` (or its name), with ``params``
    as sorted items, to each element."""
    return _kernel(_elementwise(prim), params)


def _elementwise(prim: Primitive | str) -> Primitive:
    if isinstance(prim, Primitive):
        return prim
    if prim not in PRIMITIVES or not PRIMITIVES[prim].elementwise:
        names = ", ".join(n for n, p in PRIMITIVES.items() if p.elementwise)
        raise ValueError(f"no CUDA scalar function for {prim!r}; elementwise primitives: {names}")
    return PRIMITIVES[prim]


@functools.cache
def _kernel(prim: Primitive, params: tuple) -> Callable:
    operands = [f"a{k}" for k in range(prim.arity)]
    loads = "; ".join(f"x{k} = a{k}[i]" for k in range(prim.arity))
    expr = prim.scalar_expr([f"x{k}" for k in range(prim.arity)], dict(params))
    source = (f"def kernel({', '.join(operands)}, out):\n    i = cuda.grid(1)\n"
              f"    if i < out.shape[0]:\n        {loads}\n        out[i] = {expr}\n")
    filename = f"<cuda {prim.name} {params}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"cuda": cuda, "np": np, "F": np.float32, **_functions()}
    exec(compile(source, filename, "exec"), namespace)
    return cuda.jit(namespace["kernel"])


def apply(prim: Primitive | str, *arrays: np.ndarray, **params: Any) -> np.ndarray:
    """Elementwise primitive ``prim`` (or its name) on float32 arrays (bool for a condition),
    broadcast on the host, computed on the device."""
    prim = _elementwise(prim)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = [np.broadcast_to(a, shape).reshape(-1) for a in arrays]
    out_dtype = prim.shape(*[Spec((), a.dtype) for a in arrays], **params).dtype
    size = int(np.prod(shape, dtype=np.int64))
    out = cuda.device_array(size, out_dtype)
    if size:
        blocks, threads = launch_1d(size, BLOCK)
        _kernel(prim, tuple(sorted(params.items())))[blocks, threads](*to_device(*flat), out)
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
