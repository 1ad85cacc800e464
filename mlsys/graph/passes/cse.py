"""Common-subexpression elimination."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Var, rename

MAX_CONST_BYTES = 4096


def _const_key(v: Var, array: np.ndarray) -> tuple | None:
    if v.spec.nbytes > MAX_CONST_BYTES:
        return None
    return (v.spec, np.ascontiguousarray(array).tobytes())


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Compute each (op, inputs, params) once; merge equal small constants.

    Preserves: every output value. Only pure nodes are merged: two dropout masks with the same
    parameters are different random draws and both stay.
    """
    mapping: dict[Var, Var] = {}
    consts: dict[Var, np.ndarray] = {}
    seen_consts: dict[tuple, Var] = {}
    for v, array in graph.consts.items():
        key = _const_key(v, array)
        if key is not None and key in seen_consts:
            mapping[v] = seen_consts[key]
            continue
        if key is not None:
            seen_consts[key] = v
        consts[v] = array
    seen: dict[tuple, Var] = {}
    nodes = []
    for n in rename(graph.replace(consts=consts), mapping).nodes:
        n = n.replace(inputs=tuple(mapping.get(v, v) for v in n.inputs))
        key = n.key() if n.pure else None
        if key is not None and key in seen:
            mapping[n.out] = seen[key]
            continue
        if key is not None:
            seen[key] = n.out
        nodes.append(n)
    return rename(graph.replace(nodes=tuple(nodes), consts=consts), mapping)
