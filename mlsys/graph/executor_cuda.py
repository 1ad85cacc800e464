"""The executor on the GPU: run a graph on device arrays, with its memory plan on the device.

:class:`CudaExecutable` is :class:`~mlsys.graph.executor.Executable` for graphs whose inputs
live on the ``cuda`` device. Every value is a device array; a fused group runs its generated
kernel (:mod:`mlsys.graph.codegen_cuda`), any other node the primitive's ``cuda`` kernel (or,
without one, the numpy reference on downloaded copies, noted once, as eagerly).

The memory plan (:func:`mlsys.graph.memory.plan_memory`) is carried out on the device: each of
its buffers that holds only values that die inside the call is one device allocation kept from
call to call, and a node whose kernel writes into a given array (fused groups, elementwise ops,
reductions, matmul, softmax) writes its value into its storage's buffer — a fused node the plan
runs in place, over its dying input. Buffers that hold a result of the call (outputs, state
updates, gradients) are allocated afresh each call, since the caller keeps them; so are values of
nodes whose kernels allocate their own results (from the caching allocator, which reuses freed
blocks). Constants are uploaded once, when the graph is prepared; 0-d ones are kernel arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..kernels.cuda.memory import ALLOCATOR, Block, DeviceArray, upload
from ..ops.registry import PRIMITIVES, Spec
from ..tensor import forward_on
from .codegen_cuda import CudaFusedKernel
from .executor import slots
from .ir import Graph, Node
from .memory import MemoryPlan, is_view, plan_memory, root_of

__all__ = ["CudaExecutable", "DEVICE"]

DEVICE = "cuda"


def _step(node: Node) -> Callable[[list, DeviceArray | None], Any]:
    """How a node computes its value from its inputs, into ``out`` when its kernel can."""
    if node.fused is not None:
        kernel = CudaFusedKernel(node.fused)
        return lambda xs, out: kernel(*xs, out=out)
    prim, params, dtype = PRIMITIVES[node.op], dict(node.params), node.out.spec.dtype
    impl = prim.impls.get(DEVICE)
    into = getattr(impl, "writes_into", False)

    def call(xs: list, out: DeviceArray | None) -> Any:
        if into and out is not None:
            result = impl(*xs, out=out, **params)
            if result is not NotImplemented:
                return result
        result = forward_on(DEVICE, prim, xs, params)
        return result if result.dtype == dtype else result.astype(dtype)

    return call


class CudaExecutable:
    """A graph prepared for repeated execution on the device: ``exe(*arrays) -> list of device
    arrays`` (host arrays among the inputs are uploaded)."""

    def __init__(self, graph: Graph, plan: MemoryPlan | None = None) -> None:
        graph.verify()
        self.graph = graph
        self.plan = plan or plan_memory(graph, share_outputs=False)
        slot, frees = slots(graph)
        self._n_slots = len(slot)
        self._consts = [(slot[v], np.asarray(a) if np.ndim(a) == 0 else upload(np.asarray(a)))
                        for v, a in graph.consts.items()]
        roots = root_of(graph)
        escaping = {self.plan.buffer_of[roots[v]] for v in graph.outputs if roots[v] is not None}
        self._blocks: dict[int, Block | None] = {b: None for b in range(len(self.plan.buffer_sizes))
                                                 if b not in escaping}
        self._steps = []
        for i, n in enumerate(graph.nodes):
            buffer = None if is_view(n) else self.plan.buffer_of.get(n.out)
            persistent = buffer if buffer in self._blocks else None
            self._steps.append((_step(n), tuple(slot[v] for v in n.inputs), slot[n.out],
                                tuple(frees[i]), persistent, n.out.spec))
        self._const_slots = {k for k, _ in self._consts}
        self._inputs = [(slot[v], v) for v in graph.inputs]
        self._outputs = [slot[v] for v in graph.outputs]

    @property
    def device_bytes(self) -> int:
        """Bytes of the plan's buffers held on the device between calls."""
        return sum(self.plan.buffer_sizes[b] for b, block in self._blocks.items() if block is not None)

    def _target(self, buffer: int, spec: Spec) -> DeviceArray:
        block = self._blocks[buffer]
        if block is None:
            block = self._blocks[buffer] = ALLOCATOR.malloc(self.plan.buffer_sizes[buffer])
        return DeviceArray(block, spec.dtype, spec.shape)

    def __call__(self, *arrays: Any) -> list[Any]:
        if len(arrays) != len(self._inputs):
            raise TypeError(f"graph: expected {len(self._inputs)} inputs, got {len(arrays)}")
        env: list[Any] = [None] * self._n_slots
        for (k, v), a in zip(self._inputs, arrays):
            if a.shape != v.spec.shape or a.dtype != v.spec.dtype:
                raise ValueError(f"graph: input {v} expects {v.spec.dtype}{list(v.spec.shape)}, got "
                                 f"{a.dtype}{list(a.shape)}")
            env[k] = a if isinstance(a, DeviceArray) or a.ndim == 0 else upload(a)
        for k, a in self._consts:
            env[k] = a
        for fn, ins, out, frees, buffer, spec in self._steps:
            target = None if buffer is None else self._target(buffer, spec)
            env[out] = fn([env[k] for k in ins], target)
            for k in frees:
                env[k] = None
        # a constant returned as it is would be shared with the caller: hand out a copy
        return [env[k].copy() if k in self._const_slots else env[k] for k in self._outputs]
