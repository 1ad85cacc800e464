"""Loop kernels generated from the registry: elementwise maps, reductions, and fused groups.

One generator writes every loop kernel the ``cuda`` device runs over device arrays: the
statements come from the primitives' scalar templates (``Primitive.scalar_expr``) and the
accumulation from their ``Primitive.reduction``, the same lowering data the CPU code generator
reads. :func:`loop_source` takes

* the operands, each a strided device array of the loop's full shape (a broadcast operand has
  stride 0 along the broadcast dimensions) or a scalar passed as a kernel argument (a Python
  number or a CPU constant: it travels with the launch, not over the bus);
* the statements computing one element, and optionally a reduction over the trailing
  dimensions.

The kernel runs a grid-stride loop over the output elements. A reduction is computed either by
one thread per output (the right layout when neighbouring outputs are neighbours in memory, or
the rows are short), or by a block per output whose threads stride along a contiguous row and
combine their partial results with a shared-memory tree (long contiguous rows: row sums).
The generated source is compiled with ``cuda.jit`` once per text.

Template functions (``exp``, ``log``...) are CUDA's libdevice math on a GPU. In the simulator,
which runs kernels as Python, they are numpy's, so ``log(0)`` is ``-inf`` and ``exp(1000)`` is
``inf`` as on a GPU (Python's ``math`` would raise instead).
"""

from __future__ import annotations

import functools
import linecache
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numba import boolean, float32, float64, int64

from ...ops._rules import reduced_shape
from ...ops.registry import PRIMITIVES, SCALAR_FUNCTIONS, Primitive, Reduction
from .memory import DeviceArray, empty, kernel_view
from .runtime import SIMULATOR, cuda, stride_launch

__all__ = ["loop_source", "compile_source", "scalar_functions", "map_into", "elementwise",
           "reduce_into", "reduction", "copy_into", "fill", "ROW_BLOCK", "ROW_MIN", "as_operand",
           "launch", "float_type", "accumulator_type", "choose_strategy", "elementwise_kernel"]

# threads of a block that reduces one contiguous row (a warp in the simulator, to keep it quick)
ROW_BLOCK = 32 if SIMULATOR else 128
ROW_MIN = 2048  # rows at least this long (and contiguous) are reduced a block per row
_SHARED = {"float32": float32, "float64": float64, "int64": int64, "bool": boolean}


def _quiet(fn: Callable) -> Callable:
    def call(x):
        with np.errstate(all="ignore"):
            return fn(x)

    return call


@functools.cache
def scalar_functions() -> dict[str, Callable]:
    """What a template's function names mean in a kernel on this machine."""
    if not SIMULATOR:
        return {name: getattr(math, name) for name in SCALAR_FUNCTIONS}
    ieee = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt, "tanh": np.tanh}
    return {name: _quiet(ieee[name]) if name in ieee else getattr(math, name)
            for name in SCALAR_FUNCTIONS}


def _unravel(index: str, prefix: str, sizes: list[str]) -> list[str]:
    """Lines splitting a linear ``index`` into ``prefix0, prefix1...`` over ``sizes`` (C order)."""
    if not sizes:
        return []
    if len(sizes) == 1:
        return [f"{prefix}0 = {index}"]
    lines = [f"q = {index}"]
    for d in reversed(range(1, len(sizes))):
        lines.append(f"{prefix}{d} = q % {sizes[d]}")
        lines.append(f"q //= {sizes[d]}")
    return lines + [f"{prefix}0 = q"]


def _identity(reduction: Reduction, acc_type: str) -> str:
    """The accumulator's start value in ``acc_type`` (an infinite one becomes the type's extreme
    value for integers and bools, where it is exact)."""
    value = reduction.identity
    if acc_type == "bool":
        return "True" if value > 0 else "False"
    if acc_type == "int64" and math.isinf(value):
        return repr(int(np.iinfo(np.int64).max if value > 0 else np.iinfo(np.int64).min))
    if math.isinf(value):
        return f"np.{acc_type}({'-' if value < 0 else ''}np.inf)"
    return f"np.{acc_type}({value!r})"


def loop_source(arrays: Sequence[bool], kept: int, reduced: int, statements: Sequence[str],
                result: str, reduction: Reduction | None = None, acc_type: str = "float32",
                rows: bool = False) -> str:
    """Source of ``kernel(a0, a1, ..., out)``: operand ``k`` is an array when ``arrays[k]``
    (indexed over the ``kept + reduced`` dimensions) else a scalar; ``statements`` assign
    names from ``x0, x1...`` (the operands' elements); ``result`` is the element's value. With a
    ``reduction``, the trailing ``reduced`` dimensions are combined into ``out`` (``kept``
    dimensions) by one thread per output, or a block per output when ``rows``."""
    if kept < 1:
        raise ValueError(f"loop_source: the output needs at least one dimension, got {kept}")
    names = [f"a{k}" for k in range(len(arrays))]
    first = next((k for k, is_array in enumerate(arrays) if is_array), None)
    if reduced and first is None:
        raise ValueError("loop_source: a reduction needs an array operand")
    lines = [f"def kernel({', '.join(names + ['out'])}):"]
    body: list[str] = []

    def emit(text: str, depth: int) -> None:
        body.append("    " * depth + text)

    sizes = [f"n{d}" for d in range(kept)]
    for d in range(kept):
        emit(f"n{d} = out.shape[{d}]", 1)
    rsizes = [f"r{d}" for d in range(reduced)]
    for d in range(reduced):
        emit(f"r{d} = a{first}.shape[{kept + d}]", 1)
    if rsizes:
        emit(f"rcount = {' * '.join(rsizes)}", 1)
    if rows:
        emit(f"buf = cuda.shared.array({ROW_BLOCK}, SHARED)", 1)
        emit("tid = cuda.threadIdx.x", 1)
        emit("for i in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):", 1)
    else:
        emit("for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):", 1)
    for text in _unravel("i", "i", sizes):
        emit(text, 2)
    kept_index = ", ".join(f"i{d}" for d in range(kept))
    full_index = ", ".join([f"i{d}" for d in range(kept)] + [f"j{d}" for d in range(reduced)])
    depth = 2
    if reduction is not None:
        emit(f"acc = {_identity(reduction, acc_type)}", 2)
        start, step = ("tid", ROW_BLOCK) if rows else ("0", 1)
        emit(f"for j in range({start}, {'rcount' if rsizes else '1'}, {step}):", 2)
        depth = 3
        for text in _unravel("j", "j", rsizes):
            emit(text, depth)
    for k, is_array in enumerate(arrays):
        emit(f"x{k} = a{k}[{full_index}]" if is_array else f"x{k} = a{k}", depth)
    for text in statements:
        emit(text, depth)
    if reduction is None:
        emit(f"out[{kept_index}] = {result}", 2)
    else:
        emit(f"acc = {reduction.combine.format('acc', result)}", 3)
        total = "acc"
        if rows:
            emit("buf[tid] = acc", 2)
            emit("cuda.syncthreads()", 2)
            emit(f"half = {ROW_BLOCK // 2}", 2)
            emit("while half > 0:", 2)
            emit("if tid < half:", 3)
            emit(f"buf[tid] = {reduction.combine.format('buf[tid]', 'buf[tid + half]')}", 4)
            emit("cuda.syncthreads()", 3)
            emit("half //= 2", 3)
            emit("if tid == 0:", 2)
            total, depth = "buf[0]", 3
        else:
            depth = 2
        count = "rcount" if rsizes else "1"
        emit(f"out[{kept_index}] = {total} / F({count})" if reduction.mean else
             f"out[{kept_index}] = {total}", depth)
        if rows:
            emit("cuda.syncthreads()", 2)
    return "\n".join(lines + body) + "\n"


@functools.cache
def compile_source(source: str, float_type: str = "float32", acc_type: str = "float32") -> Callable:
    """``cuda.jit`` of generated ``source`` (once per text), its names bound: ``cuda``, ``np``,
    ``F`` (the float type), ``SHARED`` (the accumulator's numba type) and the template
    functions."""
    filename = f"<cuda loop {abs(hash((source, float_type, acc_type))):x}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"cuda": cuda, "np": np, "F": getattr(np, float_type), "SHARED": _SHARED[acc_type],
                 **scalar_functions()}
    exec(compile(source, filename, "exec"), namespace)
    return cuda.jit(namespace["kernel"])


def as_operand(x: Any) -> DeviceArray | np.generic:
    """A device array as it is, a host 0-d array (a CPU constant) as a numpy scalar of its
    dtype: it is passed with the launch."""
    if isinstance(x, DeviceArray):
        return x
    array = np.asarray(x)
    if array.ndim:
        raise TypeError(f"cuda loop: operands are device arrays or scalars, got a host array of "
                        f"shape {array.shape}")
    return array[()]


def float_type(*dtypes: np.dtype) -> str:
    """float64 when a float64 value takes part (numpy would compute in it too), else float32."""
    return "float64" if any(np.dtype(d) == np.float64 for d in dtypes) else "float32"


def launch(kernel: Callable, arrays: Sequence[Any], out: DeviceArray, rows: bool = False) -> None:
    """Run a :func:`loop_source` kernel over ``out`` (device arrays pass as kernel views)."""
    items = int(np.prod(out.shape, dtype=np.int64)) if out.shape else 1
    if not items:
        return
    if rows:
        blocks, threads = (1 if SIMULATOR else min(items, 65535)), ROW_BLOCK
    else:
        blocks, threads = stride_launch(items)
    args = [kernel_view(a) if isinstance(a, DeviceArray) else a for a in arrays]
    if SIMULATOR:
        with np.errstate(all="ignore"):
            kernel[blocks, threads](*args, kernel_view(out))
    else:
        kernel[blocks, threads](*args, kernel_view(out))


def _dense(out: DeviceArray, operands: list) -> bool:
    """Whether every array operand has the output's shape and all are contiguous: then the
    loop runs over one flat dimension."""
    return out.c_contiguous and all(not isinstance(a, DeviceArray)
                                    or (a.shape == out.shape and a.c_contiguous) for a in operands)


def _statement(prim: Primitive, params: dict[str, Any], n: int) -> str:
    return f"t0 = {prim.scalar_expr([f'x{k}' for k in range(n)], params)}"


@functools.lru_cache(maxsize=4096)
def elementwise_kernel(prim: Primitive, params: tuple, arrays: tuple[bool, ...], ndim: int,
                       floats: str = "float32") -> Callable:
    """The loop kernel ``(a0, a1, ..., out)`` of elementwise ``prim`` with ``params`` (sorted
    items) over ``ndim`` dimensions; operand ``k`` is an array when ``arrays[k]``."""
    source = loop_source(arrays, ndim, 0, [_statement(prim, dict(params), len(arrays))], "t0")
    return compile_source(source, floats)


def map_into(out: DeviceArray, prim: Primitive, operands: Sequence[Any],
             params: dict[str, Any]) -> DeviceArray:
    """Write elementwise ``prim`` of ``operands`` (device arrays broadcast to ``out.shape``, or
    scalars) into ``out``, which may be a strided view."""
    operands = [as_operand(a) for a in operands]
    if _dense(out, operands):
        shape = (max(out.size, 1),)
        target = out.reshape(shape)
        views = [a.reshape(shape) if isinstance(a, DeviceArray) else a for a in operands]
    else:
        target = out
        views = [a.broadcast_to(out.shape) if isinstance(a, DeviceArray) else a for a in operands]
    dtypes = [a.dtype for a in operands] + [out.dtype]
    kernel = elementwise_kernel(prim, tuple(sorted(params.items())),
                         tuple(isinstance(a, DeviceArray) for a in operands), max(target.ndim, 1),
                         float_type(*dtypes))
    launch(kernel, views, target)
    return out


def elementwise(prim: Primitive, operands: Sequence[Any], params: dict[str, Any],
                out_dtype: Any) -> DeviceArray:
    """Elementwise ``prim`` of ``operands`` into a new device array of the broadcast shape."""
    operands = [as_operand(a) for a in operands]
    shape = np.broadcast_shapes(*(a.shape for a in operands if isinstance(a, DeviceArray)))
    return map_into(empty(shape, out_dtype), prim, operands, params)


def copy_into(dst: DeviceArray, src: Any) -> DeviceArray:
    """``dst[...] = src`` on the device (broadcasting ``src``, converting its dtype)."""
    src = as_operand(src)
    if src.dtype == dst.dtype:
        return map_into(dst, PRIMITIVES["copy"], [src], {})
    return map_into(dst, PRIMITIVES["cast"], [src], {"dtype": dst.dtype})


def fill(out: DeviceArray, value: Any) -> DeviceArray:
    """Every element of ``out`` set to ``value`` (passed with the launch: nothing crosses the bus)."""
    return copy_into(out, np.asarray(value, dtype=out.dtype))


def accumulator_type(dtype: np.dtype) -> str:
    """The accumulator of a reduction into ``dtype``: bool, int64 or the float type itself."""
    return "bool" if dtype.kind == "b" else "int64" if dtype.kind in "iu" else np.dtype(dtype).name


@functools.lru_cache(maxsize=1024)
def _reduce_kernel(prim: Primitive, kept: int, reduced: int, acc_type: str, floats: str,
                   rows: bool) -> Callable:
    source = loop_source((True,), kept, reduced, [], "x0", prim.reduction, acc_type, rows)
    return compile_source(source, floats, acc_type)


def reduce_into(out: DeviceArray, prim: Primitive, x: DeviceArray, axis: tuple[int, ...] | None,
                strategy: str | None = None) -> DeviceArray:
    """``prim`` (a primitive with a ``reduction``) of ``x`` over ``axis`` (all when None) into
    ``out`` (the kept dimensions, in order; its reduced ones, if kept, of size 1).

    ``strategy`` is ``"rows"`` (a block per output), ``"threads"`` (a thread per output), or
    None to choose: rows when the reduced elements are long (:data:`ROW_MIN`) and contiguous.
    """
    if prim.reduction is None:
        raise ValueError(f"reduce_into: {prim.name} is not a reduction with an accumulator")
    axes = tuple(range(x.ndim)) if axis is None else tuple(axis)
    kept = [d for d in range(x.ndim) if d not in axes]
    view = x.transpose(kept + list(axes))
    if not kept:
        view = view[None]
    kept_shape = view.shape[:max(len(kept), 1)]
    target = out.reshape(kept_shape)
    strategy = choose_strategy(strategy, view, len(axes))
    acc = accumulator_type(out.dtype)
    kernel = _reduce_kernel(prim, len(kept_shape), len(axes), acc, float_type(x.dtype, out.dtype),
                            strategy == "rows")
    launch(kernel, [view], target, rows=strategy == "rows")
    return out


def choose_strategy(strategy: str | None, view: DeviceArray, reduced: int) -> str:
    """``strategy`` checked, or chosen for a reduction over the trailing ``reduced`` dimensions
    of ``view``: a block per output when they hold :data:`ROW_MIN` elements or more and the last
    is contiguous (its threads read neighbouring addresses), else a thread per output."""
    if strategy is None:
        count = int(np.prod(view.shape[view.ndim - reduced:], dtype=np.int64))
        return "rows" if reduced and count >= ROW_MIN and view.strides[-1] == 1 else "threads"
    if strategy not in ("rows", "threads"):
        raise ValueError(f"cuda row kernel: strategy must be 'rows', 'threads' or None, got "
                         f"{strategy!r}")
    return strategy


def reduction(prim: Primitive, x: DeviceArray, axis: tuple[int, ...] | None, keepdims: bool,
              out_dtype: Any, strategy: str | None = None) -> DeviceArray:
    """``prim`` of ``x`` over ``axis`` into a new device array."""
    out = empty(reduced_shape(x.shape, axis, keepdims), out_dtype)
    return reduce_into(out, prim, x, axis, strategy)
