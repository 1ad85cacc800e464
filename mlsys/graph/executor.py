"""The executor: run a graph on numpy arrays.

Each node calls its primitive's reference ``forward`` from the registry (the same function the
eager engine calls) or, for a fused group, its generated Numba kernel. The program is prepared
once — every value gets a slot, every node a callable — and each value is dropped right after its
last use, so the process holds only what liveness says is live. A fused node that the memory
plan marks in-place writes its result over its dying input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ops.registry import PRIMITIVES
from .codegen import compile_fused
from .ir import Graph, Node
from .memory import MemoryPlan, plan_memory

__all__ = ["Executable", "run_graph"]


def _callable(node: Node, inplace_slot: int | None) -> Callable[..., np.ndarray]:
    if node.fused is not None:
        kernel = compile_fused(node.fused)
        if inplace_slot is None:
            return kernel

        def in_place(*xs: np.ndarray) -> np.ndarray:
            donor = xs[inplace_slot]  # a primitive may have returned a view: then allocate
            owned = donor.flags.owndata and donor.flags.writeable and donor.flags.c_contiguous
            return kernel(*xs, out=donor if owned else None)

        return in_place
    forward, params, dtype = PRIMITIVES[node.op].forward, dict(node.params), node.out.spec.dtype

    def call(*xs: np.ndarray) -> np.ndarray:
        out = forward(*xs, **params)
        if not isinstance(out, np.ndarray) or out.dtype != dtype:
            out = np.asarray(out, dtype=dtype)
        return out

    return call


def slots(graph: Graph) -> tuple[dict[Any, int], list[list[int]]]:
    """Each value's slot in an executor's environment (inputs, constants, then node outputs), and
    per node the slots its run frees: values last read there that are not graph outputs."""
    slot = {v: k for k, v in enumerate((*graph.inputs, *graph.consts, *(n.out for n in graph.nodes)))}
    last = {v: i for i, n in enumerate(graph.nodes) for v in n.inputs}
    outputs = set(graph.outputs)
    frees: list[list[int]] = [[] for _ in graph.nodes]
    for v, i in last.items():
        if v not in outputs:
            frees[i].append(slot[v])
    return slot, frees


class Executable:
    """A graph prepared for repeated execution: ``exe(*arrays) -> list of output arrays``."""

    def __init__(self, graph: Graph, plan: MemoryPlan | None = None) -> None:
        graph.verify()
        self.graph = graph
        self.plan = plan or plan_memory(graph)
        slot, frees = slots(graph)
        self._n_slots = len(slot)
        self._consts = [(slot[v], np.asarray(a)) for v, a in graph.consts.items()]
        self._steps = []
        for i, n in enumerate(graph.nodes):
            donor = self.plan.inplace.get(n.out)
            fn = _callable(n, None if donor is None else n.inputs.index(donor))
            self._steps.append((fn, tuple(slot[v] for v in n.inputs), slot[n.out], tuple(frees[i])))
        self._inputs = [(slot[v], v) for v in graph.inputs]
        self._outputs = [slot[v] for v in graph.outputs]

    def __call__(self, *arrays: Any) -> list[np.ndarray]:
        if len(arrays) != len(self._inputs):
            raise TypeError(f"graph: expected {len(self._inputs)} inputs, got {len(arrays)}")
        env: list[Any] = [None] * self._n_slots
        for (k, v), a in zip(self._inputs, arrays):
            a = np.asarray(a)
            if a.shape != v.spec.shape or a.dtype != v.spec.dtype:
                raise ValueError(f"graph: input {v} expects {v.spec.dtype}{list(v.spec.shape)}, got "
                                 f"{a.dtype}{list(a.shape)}")
            env[k] = a
        for k, a in self._consts:
            env[k] = a
        for fn, ins, out, frees in self._steps:
            env[out] = fn(*[env[k] for k in ins])
            for k in frees:
                env[k] = None
        return [env[k] for k in self._outputs]


def run_graph(graph: Graph, *arrays: Any) -> list[np.ndarray]:
    """Execute ``graph`` once on ``arrays`` (prepares an :class:`Executable` each call)."""
    return Executable(graph)(*arrays)

