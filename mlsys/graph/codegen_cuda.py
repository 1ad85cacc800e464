"""Code generation for the GPU: a fused group becomes one numba-cuda kernel.

The statements are the group's primitives' scalar templates (``Primitive.scalar_expr``) and a
trailing reduction accumulates with its primitive's ``Primitive.reduction``: the same registry
lowering the CPU code generator (:mod:`mlsys.graph.codegen`) reads. The loop around them is
:func:`mlsys.kernels.cuda.loops.loop_source`, the generator behind every eager elementwise op
and reduction on the ``cuda`` device, so a fused group and the ops it replaces compute each
element with the same expressions:

* every input is a device array viewed at the group's full shape (a broadcast input has stride 0
  where it repeats: no copies), every constant a kernel argument;
* a grid-stride loop computes each output element in registers: only the group's inputs are read
  from device memory and its one output written — what fusion saves;
* a reduction over the trailing axes runs a thread per output, or a block per output whose
  threads combine their partial results in shared memory when the reduced rows are long.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.cuda.loops import accumulator_type, choose_strategy, compile_source, launch, loop_source
from ..kernels.cuda.memory import DeviceArray, empty, upload
from ..ops.registry import PRIMITIVES
from .codegen import fused_out_dtype, fused_out_shape
from .ir import Fused, Var

__all__ = ["CudaFusedKernel", "generate_cuda_source"]


def _float_type(fused: Fused) -> str:
    body = fused.body
    specs = [v.spec for v in (*body.inputs, *body.consts, *(n.out for n in body.nodes))]
    return "float64" if any(s.dtype == np.float64 for s in specs) else "float32"


def _kept(fused: Fused) -> int:
    full = fused.body.outputs[0].spec.shape
    return len(full) - len(fused.reduce_axes) if fused.reduces else len(full)


def generate_cuda_source(fused: Fused, rows: bool = False) -> str:
    """The kernel ``kernel(inputs..., constants..., out)`` of ``fused`` (see the module doc)."""
    body = fused.body
    names: dict[Var, str] = {v: f"x{k}" for k, v in enumerate((*body.inputs, *body.consts))}
    statements = []
    for k, node in enumerate(body.nodes):
        names[node.out] = f"t{k}"
        expr = PRIMITIVES[node.op].scalar_expr([names[v] for v in node.inputs], node.params)
        statements.append(f"t{k} = {expr}")
    reduction = PRIMITIVES[fused.reduce_op].reduction if fused.reduces else None
    kept = _kept(fused)
    return loop_source((True,) * len(body.inputs) + (False,) * len(body.consts), max(kept, 1),
                       len(fused.reduce_axes) if fused.reduces else 0, statements,
                       names[body.outputs[0]], reduction,
                       accumulator_type(fused_out_dtype(fused)), rows)


class CudaFusedKernel:
    """A fused group compiled for the device: ``kernel(*inputs, out=None)`` takes device arrays
    (or host arrays, uploaded) and returns the group's output, written into ``out`` when given
    (a C-contiguous device array of the output's shape and dtype)."""

    def __init__(self, fused: Fused) -> None:
        self.fused = fused
        self.shape, self.dtype = fused_out_shape(fused), fused_out_dtype(fused)
        self.full = tuple(fused.body.outputs[0].spec.shape)
        self._kept = _kept(fused)
        self._consts = [np.asarray(a)[()] for a in fused.body.consts.values()]
        self._floats = _float_type(fused)
        self._acc = accumulator_type(self.dtype)
        self._kernels: dict[bool, Any] = {}

    def source(self, rows: bool = False) -> str:
        return generate_cuda_source(self.fused, rows)

    def __call__(self, *inputs: Any, out: DeviceArray | None = None,
                 strategy: str | None = None) -> DeviceArray:
        """``strategy`` of a reduction: ``"rows"``, ``"threads"`` or None to choose (see
        :func:`~mlsys.kernels.cuda.loops.choose_strategy`)."""
        if len(inputs) != len(self.fused.body.inputs):
            raise TypeError(f"fused kernel: expected {len(self.fused.body.inputs)} inputs, got "
                            f"{len(inputs)}")
        views = []
        for a in inputs:
            a = a if isinstance(a, DeviceArray) else upload(np.asarray(a))
            view = a.broadcast_to(self.full)
            views.append(view[None] if self._kept == 0 else view)
        if out is None:
            out = empty(self.shape, self.dtype)
        elif out.shape != self.shape or out.dtype != self.dtype or not out.c_contiguous:
            raise ValueError(f"fused kernel: out must be a C-contiguous {self.dtype} device array of "
                             f"shape {self.shape}, got {out.dtype} {out.shape}")
        target = out.reshape(self.full[:self._kept] or (1,))
        reduced = len(self.fused.reduce_axes) if self.fused.reduces else 0
        rows = bool(views) and choose_strategy(strategy, views[0], reduced) == "rows"
        kernel = self._kernels.get(rows)
        if kernel is None:
            kernel = self._kernels[rows] = compile_source(self.source(rows), self._floats, self._acc)
        launch(kernel, views + self._consts, target, rows=rows)
        return out
