"""Algebraic simplification."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Var, rename

# op -> (input position of x, value of the identity constant at the other position)
_IDENTITIES = {
    ("mul", 0): 1, ("mul", 1): 1, ("add", 0): 0, ("add", 1): 0,
    ("sub", 0): 0, ("div", 0): 1, ("pow", 0): 1,
}
_SAME_SHAPE_NOOPS = {"reshape": "shape", "broadcast_to": "shape", "sum_to": "shape"}


def _is_filled(consts: dict[Var, np.ndarray], v: Var, value: float) -> bool:
    return v in consts and bool(np.all(np.asarray(consts[v]) == value))


def _rewrite(n: Node, producer: dict[Var, Node], consts: dict[Var, np.ndarray]) -> Var | Node | None:
    """The value or node that replaces ``n``, or None to keep it."""
    if n.op in ("mul", "add", "sub", "div", "pow"):
        for keep in (0, 1):
            identity = _IDENTITIES.get((n.op, keep))
            x, c = n.inputs[keep], n.inputs[1 - keep]
            if identity is not None and x.spec == n.out.spec and _is_filled(consts, c, identity):
                return x
    x = n.inputs[0] if n.inputs else None
    inner = producer.get(x)
    if n.op in _SAME_SHAPE_NOOPS and tuple(n.params["shape"]) == x.spec.shape:
        return x
    if n.op == "cast" and np.dtype(n.params["dtype"]) == x.spec.dtype:
        return x
    if n.op == "permute" and tuple(n.params["axes"]) == tuple(range(len(x.spec.shape))):
        return x
    if inner is None:
        return None
    if n.op == "neg" and inner.op == "neg":
        return inner.inputs[0]
    if n.op == "reshape" and inner.op == "reshape":
        base = inner.inputs[0]
        return base if base.spec == n.out.spec else n.replace(inputs=(base,))
    if n.op == "permute" and inner.op == "permute":
        a, b = inner.params["axes"], n.params["axes"]
        composed = tuple(a[i] for i in b)
        base = inner.inputs[0]
        if composed == tuple(range(len(composed))):
            return base
        return n.replace(inputs=(base,), params={"axes": composed})
    return None


def simplify(graph: Graph) -> Graph:
    """Rewrite x*1, 1*x, x+0, 0+x, x-0, x/1, x**1, -(-x), no-op reshape / broadcast / cast /
    permute, reshape chains and permute chains (double transposes cancel).

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

