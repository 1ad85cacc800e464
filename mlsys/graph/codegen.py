"""Code generation: a fused group of elementwise primitives becomes one Numba kernel.

:func:`generate_source` writes plain Python — nested loops over the group's shape (passed in as
an argument, so one kernel serves every batch size with the same broadcast pattern), one scalar
expression per primitive (its template from the registry, ``Primitive.scalar``), broadcast inputs
indexed at 0 along their size-1 dimensions (no broadcast copies), an optional reduction over
trailing axes (the reduction primitive's accumulator, ``Primitive.reduction``) — and
:func:`compile_fused` compiles it with ``numba.njit``: ``parallel=True`` with ``prange`` on the
outer loop when the group is large enough to pay for threads, and IEEE semantics (``1/0`` is
``inf``, as in eager numpy). Every intermediate lives in a register; only the group's inputs are
read and its one output written, which is the memory traffic fusion saves.

Kernels are cached twice (:mod:`mlsys.kernels.cpu.generated`): in-process by their source text,
and on disk, so a second process reuses the machine code instead of paying Numba's compile time
again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..kernels.cpu.generated import cache_dir, load
from ..ops.registry import PRIMITIVES
from .ir import Fused, Graph, Node, Var

__all__ = ["can_lower", "generate_source", "compile_fused", "FusedKernel", "cache_dir",
           "PARALLEL_MIN_ELEMENTS"]

# Below this many elements a serial one-pass loop already streams at memory speed and thread
# start-up (and, on a busy machine, waiting for a free core) costs more than threads save.
PARALLEL_MIN_ELEMENTS = 1 << 22


# tanh in float32 as a branch-free rational function of x clamped to +-7.9 (beyond which tanh
# rounds to +-1): the minimax approximation Eigen uses for float tanh (absolute error below
# 4e-7 here, checked against numpy in the tests). numba's math.tanh is a scalar libm call that
# LLVM cannot vectorize without Intel's SVML; this is plain arithmetic. float64 keeps math.tanh.
_TANH_NUM = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
             5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
             -2.76076847742355e-16)
_TANH_DEN = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
             1.19825839466702e-06)
_TANH_CLAMP = 7.90531110763549805


def _horner(coefficients: tuple[float, ...], var: str) -> str:
    expr = f"F({coefficients[-1]!r})"
    for c in reversed(coefficients[:-1]):
        expr = f"({expr} * {var} + F({c!r}))"
    return expr


def _header(float_type: str) -> list[str]:
    """The kernel module's imports and the template functions (``SCALAR_FUNCTIONS``) it binds."""
    lines = ["import numba", "import numpy as np", "from math import erf, exp, log, log1p, sqrt",
             "", f"F = np.{float_type}", "", "",
             "@numba.njit(inline=\"always\", error_model=\"numpy\")", "def tanh(x):"]
    if float_type == "float64":
        return lines + ["    return np.tanh(x)", "", ""]
    return lines + [f"    v = min(max(x, F({-_TANH_CLAMP!r})), F({_TANH_CLAMP!r}))",
                    "    v2 = v * v",
                    f"    return v * {_horner(_TANH_NUM, 'v2')} / {_horner(_TANH_DEN, 'v2')}", "", ""]


def can_lower(node: Node) -> bool:
    """Whether ``node`` is an elementwise primitive this module can emit (each one has its scalar
    template in its registry entry). float16 values stay on the numpy reference path: Numba has no
    half-precision arithmetic on the CPU."""
    return (node.fused is None and node.elementwise
            and all(v.spec.dtype != np.float16 for v in (*node.inputs, node.out)))


def _literal(value: Any) -> str:
    """A constant as source: floats as ``F(...)`` in the kernel's float type (infinities and NaN
    spelled with numpy's names)."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        return repr(array.item())
    v = float(array.item())
    if math.isnan(v):
        return "F(np.nan)"
    return f"F({'-' if v < 0 else ''}np.inf)" if math.isinf(v) else f"F({v!r})"


def _float_type(body: Graph) -> str:
    """float32 unless a float64 value takes part (then numpy would compute in float64 too)."""
    specs = [v.spec for v in (*body.inputs, *body.consts, *(n.out for n in body.nodes))]
    return "float64" if any(s.dtype == np.float64 for s in specs) else "float32"


def _index(shape: tuple[int, ...], full: tuple[int, ...]) -> str:
    """Index into an input of ``shape`` broadcast to ``full``: size-1 dimensions read at 0."""
    if not shape:
        return "[0]"
    lead = len(full) - len(shape)
    parts = [f"i{lead + j}" if n == full[lead + j] else "0" for j, n in enumerate(shape)]
    return "[" + ", ".join(parts) + "]"


def generate_source(fused: Fused, parallel: bool | None = None) -> str:
    """The Python source of the kernel ``kernel(out, shape, a0, a1, ...)`` for ``fused``
    (``shape``: the group's full index space).

    ``parallel=None`` decides by size (:data:`PARALLEL_MIN_ELEMENTS`).
    """
    body: Graph = fused.body
    full = body.outputs[0].spec.shape
    size = int(np.prod(full, dtype=np.int64))
    axes = fused.reduce_axes
    n_lead = len(full) if axes is None else len(full) - len(axes)
    if parallel is None:
        parallel = size >= PARALLEL_MIN_ELEMENTS and (n_lead > 0 and full[0] > 1 or axes is not None)
    names: dict[Var, str] = {v: f"a{k}" for k, v in enumerate(body.inputs)}
    float_type = _float_type(body)
    lines = _header(float_type)
    # error_model="numpy": x / 0 is inf or nan, as in the primitives' numpy forwards (Numba's
    # default raises ZeroDivisionError, and its check per division keeps loops from vectorizing)
    lines += [f"@numba.njit(parallel={parallel}, cache=True, nogil=True, error_model=\"numpy\")",
              f"def kernel(out, shape, {', '.join(names[v] for v in body.inputs)}):"]
    depth = 1

    def emit(text: str) -> None:
        lines.append("    " * depth + text)

    def loop(d: int) -> None:
        nonlocal depth
        rng = "numba.prange" if parallel and d == 0 else "range"
        emit(f"for i{d} in {rng}(shape[{d}]):")
        depth += 1

    for d in range(n_lead):
        loop(d)
    reduction = PRIMITIVES[fused.reduce_op].reduction if axes is not None else None
    if reduction is not None:
        emit(f"acc = {_literal(np.float64(reduction.identity))}")
        for d in range(n_lead, len(full)):
            loop(d)
    for k, v in enumerate(body.inputs):
        emit(f"x{k} = {names[v]}{_index(v.spec.shape, full)}")
        names[v] = f"x{k}"
    for v, value in body.consts.items():
        names[v] = _literal(value)
    for k, n in enumerate(body.nodes):
        names[n.out] = f"t{k}"  # by position, not value id: equal groups give equal source
        expr = PRIMITIVES[n.op].scalar_expr([names[v] for v in n.inputs], n.params)
        emit(f"{names[n.out]} = {expr}")
    result = names[body.outputs[0]]
    if reduction is None:
        emit(f"out{_index(full, full)} = {result}")
    else:
        emit(f"acc = {reduction.combine.format('acc', result)}")
        depth = n_lead + 1
        count = int(np.prod(full[n_lead:], dtype=np.int64))
        total = f"acc / F({count})" if reduction.mean else "acc"
        emit(f"out{_index(full[:n_lead], full[:n_lead])} = {total}")
    return "\n".join(lines) + "\n"


def fused_out_dtype(fused: Fused) -> np.dtype:
    spec = fused.body.outputs[0].spec
    if fused.reduces and spec.dtype == np.dtype(bool):
        return np.dtype(np.int64)
    return np.dtype(spec.dtype)


def fused_out_shape(fused: Fused) -> tuple[int, ...]:
    full = fused.body.outputs[0].spec.shape
    if not fused.reduces:
        return full
    axes = fused.reduce_axes
    if fused.keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(full))
    return tuple(n for d, n in enumerate(full) if d not in axes)


class FusedKernel:
    """A compiled fused group: ``kernel(*inputs, out=None)`` returns the group's output array."""

    def __init__(self, fused: Fused, parallel: bool | None = None) -> None:
        self.fused = fused
        self.source = generate_source(fused, parallel)
        self.shape = fused_out_shape(fused)
        self.dtype = fused_out_dtype(fused)
        full = fused.body.outputs[0].spec.shape
        n_lead = len(full) - len(fused.reduce_axes) if fused.reduces else len(full)
        self._store_shape = full[:n_lead] or (1,)
        self._full = tuple(int(n) for n in full)
        self._fn = load(self.source).kernel

    def __call__(self, *inputs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if len(inputs) != len(self.fused.body.inputs):
            raise TypeError(f"fused kernel: expected {len(self.fused.body.inputs)} inputs, got "
                            f"{len(inputs)}")
        args = [a.reshape(1) if a.ndim == 0 else a for a in map(np.asarray, inputs)]
        if out is None:
            out = np.empty(self.shape, dtype=self.dtype)
        elif out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"fused kernel: out must be a C-contiguous {self.dtype} array of shape "
                             f"{self.shape}, got {out.dtype} {out.shape}")
        self._fn(out.reshape(self._store_shape), self._full, *args)
        return out


def compile_fused(fused: Fused, parallel: bool | None = None) -> FusedKernel:
    """Generate and compile (or fetch from the caches) the Numba kernel for a fused group."""
    return FusedKernel(fused, parallel)
