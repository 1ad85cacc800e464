"""Code generation: a fused group of elementwise primitives becomes one Numba kernel.

:func:`generate_source` writes plain Python — nested loops over the group's shape (passed in as
an argument, so one kernel serves every batch size with the same broadcast pattern), one scalar
expression per primitive, broadcast inputs indexed at 0 along their size-1 dimensions (no
broadcast copies), an optional sum over trailing axes — and :func:`compile_fused` compiles it
with ``numba.njit``: ``parallel=True`` with ``prange`` on the outer loop when the group is large
enough to pay for threads. Every intermediate lives in a register; only the group's inputs are
read and its one output written, which is the memory traffic fusion saves.

Kernels are cached twice: in-process by their source text, and on disk (the generated module is
written under :func:`cache_dir` and compiled with ``cache=True``), so a second process reuses the
machine code instead of paying Numba's compile time again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .ir import Fused, Graph, Node, Var

__all__ = ["SCALAR", "can_lower", "generate_source", "compile_fused", "FusedKernel", "cache_dir",
           "PARALLEL_MIN_ELEMENTS"]

# Below this many elements a serial one-pass loop already streams at memory speed and thread
# start-up (and, on a busy machine, waiting for a free core) costs more than threads save.
PARALLEL_MIN_ELEMENTS = 1 << 22


def _cast(args: list[str], params: Mapping[str, Any]) -> str:
    dtype = np.dtype(params["dtype"])
    if dtype.kind == "b":
        return f"({args[0]} != 0)"
    return f"np.{dtype.name}({args[0]} * 1)"  # `* 1` promotes a bool, which np.float32() refuses


def _tanh_of(x: str) -> str:
    return f"tanh_({x})"  # defined in every kernel module, for the kernel's float type


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


def _tanh_helper(float_type: str) -> list[str]:
    """Source of the module-level ``tanh_`` that kernels inline."""
    lines = ["@numba.njit(inline=\"always\", error_model=\"numpy\")", "def tanh_(x):"]
    if float_type == "float64":
        return lines + ["    return math.tanh(x)"]
    return lines + [f"    v = min(max(x, F({-_TANH_CLAMP!r})), F({_TANH_CLAMP!r}))",
                    "    v2 = v * v",
                    f"    return v * {_horner(_TANH_NUM, 'v2')} / {_horner(_TANH_DEN, 'v2')}"]


def _gelu(args: list[str], params: Mapping[str, Any]) -> str:
    x = args[0]
    if params["approximate"] == "tanh":
        inner = f"F(0.7978845608028654) * ({x} + F(0.044715) * {x} * {x} * {x})"
        return f"(F(0.5) * {x} * (F(1.0) + {_tanh_of(inner)}))"
    return f"(F(0.5) * {x} * (F(1.0) + math.erf({x} * F(0.7071067811865476))))"


def _gelu_grad(args: list[str], params: Mapping[str, Any]) -> str:
    x = args[0]
    if params["approximate"] == "tanh":
        t = _tanh_of(f"F(0.7978845608028654) * ({x} + F(0.044715) * {x} * {x} * {x})")
        dt = f"(F(0.7978845608028654) * (F(1.0) + F(0.134145) * {x} * {x}))"
        return f"(F(0.5) * (F(1.0) + {t}) + F(0.5) * {x} * (F(1.0) - {t} * {t}) * {dt})"
    return (f"(F(0.5) * (F(1.0) + math.erf({x} * F(0.7071067811865476))) + {x} * "
            f"math.exp(F(-0.5) * {x} * {x}) * F(0.3989422804014327))")


def _fmt(template: str) -> Callable[[list[str], Mapping[str, Any]], str]:
    return lambda args, params: template.format(*args)


# Scalar lowering of elementwise primitives (keyed by registry name). An elementwise primitive
# without an entry is simply left unfused; this table adds no op, it says how to emit one.
# Float literals are written F(...), F being the kernel's float type, so float32 data is computed
# in float32 as numpy does (a bare 0.5 would promote the whole expression to float64).
SCALAR: dict[str, Callable[[list[str], Mapping[str, Any]], str]] = {
    "add": _fmt("({0} + {1})"), "sub": _fmt("({0} - {1})"), "mul": _fmt("({0} * {1})"),
    "div": _fmt("({0} / {1})"), "pow": _fmt("({0} ** {1})"), "maximum": _fmt("max({0}, {1})"),
    "neg": _fmt("(-{0})"), "exp": _fmt("math.exp({0})"), "log": _fmt("math.log({0})"),
    "sqrt": _fmt("math.sqrt({0})"), "tanh": lambda args, params: _tanh_of(args[0]),
    "sigmoid": _fmt("(F(1.0) / (F(1.0) + math.exp(-{0})))"),
    "relu": _fmt("max({0}, F(0.0))"),
    "greater": _fmt("({0} > {1})"), "greater_equal": _fmt("({0} >= {1})"),
    "less": _fmt("({0} < {1})"), "less_equal": _fmt("({0} <= {1})"),
    "equal": _fmt("({0} == {1})"), "not_equal": _fmt("({0} != {1})"),
    "where": _fmt("({1} if {0} else {2})"), "cast": _cast, "gelu": _gelu,
    "gelu_grad": _gelu_grad,
}


_USES_TANH = {"tanh", "gelu", "gelu_grad"}


def can_lower(node: Node) -> bool:
    """Whether ``node`` is an elementwise primitive this module can emit. float16 values stay on
    the numpy reference path: Numba has no half-precision arithmetic on the CPU."""
    return (node.fused is None and node.elementwise and node.op in SCALAR
            and all(v.spec.dtype != np.float16 for v in (*node.inputs, node.out)))


def _literal(value: np.ndarray) -> str:
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return f"F({array.item()!r})"
    return repr(array.item())


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
    lines = ["import math", "", "import numba", "import numpy as np", "", f"F = np.{float_type}",
             "", ""]
    if any(n.op in _USES_TANH for n in body.nodes):
        lines += [*_tanh_helper(float_type), "", ""]
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
    if axes is not None:
        emit("acc = 0.0" if np.dtype(fused_out_dtype(fused)).kind == "f" else "acc = 0")
        for d in range(n_lead, len(full)):
            loop(d)
    for k, v in enumerate(body.inputs):
        emit(f"x{k} = {names[v]}{_index(v.spec.shape, full)}")
        names[v] = f"x{k}"
    for v, value in body.consts.items():
        names[v] = _literal(value)
    for k, n in enumerate(body.nodes):
        names[n.out] = f"t{k}"  # by position, not value id: equal groups give equal source
        emit(f"{names[n.out]} = {SCALAR[n.op]([names[v] for v in n.inputs], n.params)}")
    result = names[body.outputs[0]]
    if axes is None:
        emit(f"out{_index(full, full)} = {result}")
    else:
        emit(f"acc += {result}")
        depth = n_lead + 1
        emit(f"out{_index(full[:n_lead], full[:n_lead])} = acc")
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


def cache_dir() -> Path | None:
    """Where generated kernel modules are written (``$MLSYS_KERNEL_CACHE`` or the user cache);
    None when it cannot be created, and then kernels are cached in-process only."""
    root = os.environ.get("MLSYS_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlsys", "kernels")
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return Path(root) if os.access(root, os.W_OK) else None


def _load(source: str) -> Callable[..., None]:
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    where = cache_dir()
    if where is None:
        namespace: dict[str, Any] = {}
        exec(compile(source.replace("cache=True", "cache=False"), f"<kernel {digest}>", "exec"),
             namespace)
        return namespace["kernel"]
    path = where / f"k_{digest}.py"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=where, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    name = f"mlsys_kernel_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Numba's disk cache re-imports the module by name
    spec.loader.exec_module(module)
    return module.kernel


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
        self._fn = _KERNELS.get(self.source) or _KERNELS.setdefault(self.source, _load(self.source))

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


_KERNELS: dict[str, Callable[..., None]] = {}


def compile_fused(fused: Fused, parallel: bool | None = None) -> FusedKernel:
    """Generate and compile (or fetch from the caches) the Numba kernel for a fused group."""
    return FusedKernel(fused, parallel)
