"""Algebraic simplification."""

from __future__ import annotations

import numpy as np

from ...ops.registry import PRIMITIVES
from ..ir import Graph, Node, Var, rename


def _is_filled(consts: dict[Var, np.ndarray], v: Var, value: float) -> bool:
    return v in consts and bool(np.all(np.asarray(consts[v]) == value))


def _rewrite(n: Node, producer: dict[Var, Node], consts: dict[Var, np.ndarray]) -> Var | Node | None:
    """The value or node that replaces ``n``, or None to keep it (``Primitive.algebra`` rules)."""
    algebra = PRIMITIVES[n.op].algebra
    for position, value in algebra.neutral.items():
        x = n.inputs[1 - position]
        if x.spec == n.out.spec and _is_filled(consts, n.inputs[position], value):
            return x
    if not n.inputs:
        return None
    x = n.inputs[0]
    if algebra.noop is not None and x.spec == n.out.spec and algebra.noop(x.spec, **n.params):
        return x
    inner = producer.get(x)
    if inner is None or inner.op != n.op:
        return None
    if algebra.involution:
        return inner.inputs[0]
    if algebra.compose is not None:
        return n.replace(inputs=(inner.inputs[0],), params=algebra.compose(inner.params, n.params))
    return None


def simplify(graph: Graph) -> Graph:
    """Apply each primitive's exact rewrites (``Primitive.algebra``): x*1, 1*x, x+0, 0+x, x-0, x/1,
    x**1 (neutral operands), -(-x) (involutions), no-op reshape / broadcast / cast / permute /
    copy / pad, and chains of reshapes, broadcasts and permutes composed into one (double
    transposes cancel).

    Preserves: every output value exactly (only exact identities are used — up to the sign of a
    zero, as -0.0 + 0 is +0.0 — and only when the kept operand already has the result's shape and
    dtype). Bypassed nodes are left for dead-code elimination.
    """
    consts = dict(graph.consts)
    mapping: dict[Var, Var] = {}
    producer: dict[Var, Node] = {}
    nodes = []
    for n in graph.nodes:
        n = n.replace(inputs=tuple(mapping.get(v, v) for v in n.inputs))
        new = _rewrite(n, producer, consts) if n.fused is None else None
        while isinstance(new, Node):  # a rewritten node may simplify again (a chain of three)
            n, new = new, _rewrite(new, producer, consts)
        if isinstance(new, Var):
            mapping[n.out] = new
            continue
        producer[n.out] = n
        nodes.append(n)
    return rename(graph.replace(nodes=tuple(nodes)), mapping)

