"""Code generation: a fused group of elementwise primitives becomes one Numba kernel.

:func:`generate_source` writes plain Python that Numba compiles to parallel SIMD code:

* **Layout.** The group's index space is collapsed first: size-1 dimensions go, and neighbouring
  dimensions that every input either spans or broadcasts over alike merge (a ``(64, 128, 128)``
  chain with no broadcasting becomes one flat dimension). What remains is *rows* of a contiguous
  *inner* dimension. The sizes are an argument, so one kernel serves every batch size with the
  same broadcast pattern.
* **Tiles.** Each row is cut into blocks of :data:`BLOCK` elements. A tile's loop evaluates the
  whole chain for its block — one scalar expression per primitive, its template from the registry
  (``Primitive.scalar``) — into a small buffer that stays in L1, then copies it out (or reduces
  it). Inputs broadcast along the inner dimension are read once per tile, and everything that
  depends on them alone (``sigmoid(y)`` of a per-row ``y``) is computed once per tile, outside the
  loop. The tile loop has no calls and no branches that stay branches (templates' conditionals
  become selects), so LLVM vectorizes it: the transcendental functions come from
  :mod:`mlsys.kernels.cpu.vmath`, whose float32 versions are plain arithmetic.
* **Threads.** Tiles (or, for a reduction, output elements, each split into parts when there are
  few of them) are spread over ``numba.get_num_threads()`` threads with ``prange`` when the group
  has enough work (:data:`PARALLEL_MIN_WORK`) to pay for waking them; ``numba.set_num_threads``
  sets how many. How the work is cut depends on the shape only, so the result is the same bits
  serial or parallel, on any number of threads.
* **A trailing reduction** (the reduction primitive's accumulator, ``Primitive.reduction``)
  reduces each tile's buffer, then the tiles' partial results in order.

Floating point: the chain itself is compiled without fast-math, so every operation rounds as in
numpy and follows IEEE (``1/0`` is ``inf``, ``error_model="numpy"``; NaN propagates; signed zeros
kept). The one fast-math flag is ``reassoc`` on the loop that sums a tile's buffer — the
reassociation that lets it vectorize, which changes only the order of a sum (numpy's own
pairwise order is not sequential either), never an inf or a NaN. The vmath polynomials contract
their multiply-adds into FMAs, on arguments they have already clamped.

Kernels are cached twice (:mod:`mlsys.kernels.cpu.generated`): in-process by their source text,
and on disk, so a second process reuses the machine code instead of paying Numba's compile time
again (the source names a fingerprint of the vmath functions it inlines, so changing those
compiles afresh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels.cpu.forksafe import forked_after_threads
from ..kernels.cpu.generated import SCALAR_IMPORTS, cache_dir, load
from ..ops.registry import PRIMITIVES
from .ir import Fused, Graph, Node, Var

__all__ = ["can_lower", "generate_source", "compile_fused", "FusedKernel", "cache_dir", "BLOCK",
           "PARALLEL_MIN_WORK", "Layout", "layout"]

# Elements per tile: a float64 block (8 KiB) fits in L1 with room for the inputs' blocks.
BLOCK = 1024
# Threads pay off above about this many element-operations (elements x (1 + FLOPs per element)):
# around a millisecond of one core's work, well above the cost of waking the thread pool, and
# above the sizes of a small model's training step, whose kernels stay serial.
PARALLEL_MIN_WORK = 1 << 21
# A reduction with fewer outputs than this splits each output's range into parts (so that a
# full reduction still uses every thread); how many depends on the shape only.
PARTS = 64


def can_lower(node: Node) -> bool:
    """Whether ``node`` is an elementwise primitive this module can emit (each one has its scalar
    template in its registry entry). float16 values stay on the numpy reference path: Numba has no
    half-precision arithmetic on the CPU."""
    return (node.fused is None and node.elementwise
            and all(v.spec.dtype != np.float16 for v in (*node.inputs, node.out)))


@dataclass(frozen=True)
class Layout:
    """A fused group's index space after collapsing: ``dims`` (the last one is the contiguous
    inner dimension), how many leading ones a reduction keeps (``lead``; all of them without a
    reduction) and, for each input, whether it spans each dimension (``spans``; else it is
    broadcast there)."""

    dims: tuple[int, ...]
    lead: int
    spans: tuple[tuple[bool, ...], ...]

    def input_shape(self, k: int) -> tuple[int, ...]:
        """The shape input ``k`` is reshaped to: its spanned dimensions, broadcast ones as 1,
        leading broadcast ones dropped (numpy's alignment from the right)."""
        shape = [n if s else 1 for n, s in zip(self.dims, self.spans[k])]
        while len(shape) > 1 and shape[0] == 1:
            shape.pop(0)
        return tuple(shape)


def layout(fused: Fused) -> Layout:
    """Collapse ``fused``'s index space (see the module doc)."""
    full = fused.body.outputs[0].spec.shape
    ins = [v.spec.shape for v in fused.body.inputs]
    aligned = [(1,) * (len(full) - len(s)) + tuple(s) for s in ins]
    n_lead = len(full) - len(fused.reduce_axes) if fused.reduces else len(full)
    regions: list[list[tuple[int, tuple[bool, ...]]]] = [[], []]  # kept dims, reduced dims
    for d, n in enumerate(full):
        if n == 1:
            continue
        spans = tuple(s[d] == n for s in aligned)
        region = regions[d >= n_lead]
        if region and region[-1][1] == spans:
            region[-1] = (region[-1][0] * n, spans)
        else:
            region.append((n, spans))
    if fused.reduces and not regions[1]:
        regions[1].append((1, (False,) * len(ins)))
    dims = regions[0] + regions[1] or [(1, (False,) * len(ins))]
    return Layout(tuple(n for n, _ in dims), len(regions[0]) if fused.reduces else len(dims),
                  tuple(tuple(spans[k] for _, spans in dims) for k in range(len(ins))))


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


def _work(fused: Fused) -> int:
    """Element-operations of one call: elements x (1 + FLOPs per element), from the cost rules."""
    size = fused.body.outputs[0].spec.size
    return size + sum(n.cost().flops for n in fused.body.nodes)


def _product(terms: list[str]) -> str:
    return " * ".join(terms) or "1"


class _Writer:
    """Lines of source at an indentation depth."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.depth = lines, 0

    def __call__(self, *texts: str) -> None:
        self.lines.extend("    " * self.depth + t for t in texts)


def _tile_body(w: _Writer, fused: Fused, lay: Layout) -> None:
    """Emit the evaluation of the chain for the tile at row ``r``, columns ``j0 : j0 + m``, into
    ``buf[:m]``."""
    body, k_dims = fused.body, len(lay.dims)
    needed = [d for d in range(k_dims - 1) if any(s[d] for s in lay.spans)]
    if needed:  # the row's index along each dimension an input spans (C order: last is fastest)
        w("q = r")
        for d in range(k_dims - 2, needed[0] - 1, -1):
            w(f"i{d} = q" if d == 0 else f"i{d} = q % shape[{d}]")
            if d > needed[0]:
                w(f"q //= shape[{d}]")
    names: dict[Var, str] = {}
    invariant: set[Var] = set()
    loads = []
    for k, v in enumerate(body.inputs):
        rank = len(lay.input_shape(k))
        spans = lay.spans[k]
        index = [f"i{d}" if spans[d] else "0" for d in range(k_dims - rank, k_dims - 1)]
        if spans[-1]:
            w(f"v{k} = a{k}[{', '.join([*index, 'j0:j0 + m'])}]")
            loads.append(f"x{k} = v{k}[j]")
        else:
            w(f"x{k} = a{k}[{', '.join([*index, '0'])}]")
            invariant.add(v)
        names[v] = f"x{k}"
    for v, value in body.consts.items():
        names[v] = _literal(value)
        invariant.add(v)
    inner = []
    for k, n in enumerate(body.nodes):
        names[n.out] = f"t{k}"  # by position, not value id: equal groups give equal source
        line = f"t{k} = {PRIMITIVES[n.op].scalar_expr([names[v] for v in n.inputs], n.params)}"
        if all(v in invariant for v in n.inputs):
            invariant.add(n.out)
            w(line)  # once per tile: it depends on nothing that varies along the row
        else:
            inner.append(line)
    w("for j in range(m):")
    w.depth += 1
    w(*loads, *inner, f"buf[j] = {names[body.outputs[0]]}")
    w.depth -= 1


def generate_source(fused: Fused, parallel: bool | None = None) -> str:
    """The Python source of the kernel ``kernel(out, shape, a0, a1, ...)`` for ``fused``:
    ``shape`` is the collapsed index space (:func:`layout`), the inputs are reshaped to
    ``Layout.input_shape``, and ``out`` is ``(rows, inner)`` without a reduction, else one
    element per output.

    ``parallel=None`` decides by the amount of work (:data:`PARALLEL_MIN_WORK`).
    """
    lay = layout(fused)
    if parallel is None:
        parallel = _work(fused) >= PARALLEL_MIN_WORK
    body = fused.body
    float_type = _float_type(body)
    buf_type = np.dtype(body.outputs[0].spec.dtype).name
    k_dims = len(lay.dims)
    args = ", ".join(f"a{k}" for k in range(len(body.inputs)))
    lines = ["import numba", "import numpy as np", *SCALAR_IMPORTS, "", f"F = np.{float_type}",
             f"BLOCK = {BLOCK}", "", ""]
    reduction = PRIMITIVES[fused.reduce_op].reduction if fused.reduces else None
    if reduction is not None:
        # reassoc (and nothing else): the sum of a block vectorizes; inf and NaN keep their meaning
        lines += ["@numba.njit(cache=True, nogil=True, error_model=\"numpy\", fastmath={\"reassoc\"})",
                  "def reduce_block(buf, m):",
                  f"    acc = {_literal(np.float64(reduction.identity))}",
                  "    for j in range(m):",
                  f"        acc = {reduction.combine.format('acc', 'buf[j]')}",
                  "    return acc", "", ""]
    # error_model="numpy": x / 0 is inf or nan, as in the primitives' numpy forwards (Numba's
    # default raises ZeroDivisionError, and its check per division keeps loops from vectorizing)
    lines += [f"@numba.njit(parallel={parallel}, cache=True, nogil=True, error_model=\"numpy\")",
              f"def kernel(out, shape, {args}):"]
    w = _Writer(lines)
    w.depth = 1
    rng = "numba.prange" if parallel else "range"
    new_buf = f"buf = np.empty(BLOCK, np.{buf_type})"
    w(f"n = shape[{k_dims - 1}]", "nb = (n + BLOCK - 1) // BLOCK")
    if reduction is None:
        w(f"rows = {_product([f'shape[{d}]' for d in range(k_dims - 1)])}")
        if not parallel:
            w(new_buf)
        w(f"for task in {rng}(rows * nb):")
        w.depth += 1
        if parallel:
            w(new_buf)  # Numba hoists it: one buffer per thread
        w("r = task // nb", "j0 = (task - r * nb) * BLOCK", "m = min(BLOCK, n - j0)")
        _tile_body(w, fused, lay)
        w("dst = out[r, j0:j0 + m]", "for j in range(m):", "    dst[j] = buf[j]")
        return "\n".join(lines) + "\n"
    w(f"outs = {_product([f'shape[{d}]' for d in range(lay.lead)])}",
      f"red_rows = {_product([f'shape[{d}]' for d in range(lay.lead, k_dims - 1)])}",
      "tiles = red_rows * nb",
      f"parts = max(1, min(tiles, {PARTS} // outs))",
      "partial = np.empty(outs * parts, F)")
    if not parallel:
        w(new_buf)
    w(f"for task in {rng}(outs * parts):")
    w.depth += 1
    if parallel:
        w(new_buf)
    w("o = task // parts", "p = task - o * parts", f"acc = {_literal(np.float64(reduction.identity))}",
      "for tile in range(p * tiles // parts, (p + 1) * tiles // parts):")
    w.depth += 1
    w("rr = tile // nb", "r = o * red_rows + rr", "j0 = (tile - rr * nb) * BLOCK",
      "m = min(BLOCK, n - j0)")
    _tile_body(w, fused, lay)
    w(f"acc = {reduction.combine.format('acc', 'reduce_block(buf, m)')}")
    w.depth -= 1
    w("partial[task] = acc")
    w.depth -= 1
    total = "acc / F(red_rows * n)" if reduction.mean else "acc"
    w("for o in range(outs):", "    acc = partial[o * parts]", "    for p in range(1, parts):",
      f"        acc = {reduction.combine.format('acc', 'partial[o * parts + p]')}",
      f"    out[o] = {total}")
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
    """A compiled fused group: ``kernel(*inputs, out=None)`` returns the group's output array.

    A parallel kernel runs serially in a process forked after its parent's thread pool started
    (:mod:`mlsys.kernels.cpu.forksafe`), where a parallel loop would abort the process."""

    def __init__(self, fused: Fused, parallel: bool | None = None) -> None:
        self.fused = fused
        self.layout = layout(fused)
        self.parallel = _work(fused) >= PARALLEL_MIN_WORK if parallel is None else parallel
        self.source = generate_source(fused, self.parallel)
        self.shape = fused_out_shape(fused)
        self.dtype = fused_out_dtype(fused)
        dims = self.layout.dims
        self._dims = tuple(int(n) for n in dims)
        self._in_shapes = [self.layout.input_shape(k) for k in range(len(fused.body.inputs))]
        if fused.reduces:
            self._store_shape: tuple[int, ...] = (int(np.prod(dims[:self.layout.lead], dtype=np.int64)),)
        else:
            self._store_shape = (int(np.prod(dims[:-1], dtype=np.int64)), dims[-1])
        self._fn = load(self.source).kernel

    def __call__(self, *inputs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if len(inputs) != len(self._in_shapes):
            raise TypeError(f"fused kernel: expected {len(self._in_shapes)} inputs, got "
                            f"{len(inputs)}")
        args = [np.asarray(a).reshape(s) for a, s in zip(inputs, self._in_shapes)]
        if out is None:
            out = np.empty(self.shape, dtype=self.dtype)
        elif out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"fused kernel: out must be a C-contiguous {self.dtype} array of shape "
                             f"{self.shape}, got {out.dtype} {out.shape}")
        fn = self._fn if not (self.parallel and forked_after_threads()) else self._serial()
        fn(out.reshape(self._store_shape), self._dims, *args)
        return out

    def _serial(self) -> Any:
        return load(generate_source(self.fused, parallel=False)).kernel


def compile_fused(fused: Fused, parallel: bool | None = None) -> FusedKernel:
    """Generate and compile (or fetch from the caches) the Numba kernel for a fused group."""
    return FusedKernel(fused, parallel)
