"""Constant folding."""

from __future__ import annotations

import numpy as np

from ...ops.registry import PRIMITIVES
from ..ir import Graph

MAX_FOLD_BYTES = 1 << 20


def fold_constants(graph: Graph, max_bytes: int = MAX_FOLD_BYTES) -> Graph:
    """Evaluate, at compile time, every pure node whose inputs are all constants.

    Preserves: every output value. Never touches graph inputs (they change per call), impure
    nodes (a random mask must be drawn anew each call) or results over ``max_bytes`` (folding a
    broadcast would bake a large array into the program).
    """
    consts = dict(graph.consts)
    nodes = []
    for n in graph.nodes:
        if (n.fused is None and n.pure and all(v in consts for v in n.inputs)
                and n.out.spec.nbytes <= max_bytes):
            value = PRIMITIVES[n.op].forward(*(consts[v] for v in n.inputs), **n.params)
            consts[n.out] = np.array(value, dtype=n.out.spec.dtype, copy=True)
        else:
            nodes.append(n)
    return graph.replace(nodes=tuple(nodes), consts=consts)
