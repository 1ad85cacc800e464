"""Elementwise fusion (with code generation by :mod:`mlsys.graph.codegen`)."""

from __future__ import annotations

import numpy as np

from ...ops.registry import PRIMITIVES
from ..codegen import can_lower
from ..ir import FUSED, Fused, Graph, Node, Var


def _joins(shape: tuple[int, ...], full: tuple[int, ...]) -> bool:
    """Whether a producer of ``shape`` may join a group over ``full``: the same index space, or
    one that broadcasts into it and is constant along its last axis (a per-row or 0-d value),
    which the generated kernel computes once per row block, not once per element."""
    if shape == full:
        return True
    if not full or (shape and shape[-1] != 1) or len(shape) > len(full):
        return False
    return all(n in (1, m) for n, m in zip(shape[::-1], full[::-1]))


def _group(root: Node, producer: dict[Var, Node], users: dict[Var, list[Node]],
           taken: set[Node], outputs: set[Var]) -> set[Node]:
    """Grow a group upwards from ``root``: absorb an elementwise producer whose index space
    joins the group's (:func:`_joins`) once every one of its users is already in the group (so
    nothing outside needs it)."""
    members = {root}
    changed = True
    while changed:
        changed = False
        for m in list(members):
            for v in m.inputs:
                p = producer.get(v)
                if (p is None or p in members or p in taken or not can_lower(p) or v in outputs
                        or not _joins(p.out.spec.shape, root.out.spec.shape)):
                    continue
                if all(u in members for u in users[v]):
                    members.add(p)
                    changed = True
    return members


def _suffix_reduction(n: Node | None, ndim: int) -> tuple[int, ...] | None:
    """The reduced axes if ``n`` reduces a float tensor over trailing axes with an accumulator
    (``Primitive.reduction``: sum, mean, max, min, prod) — the legal case."""
    if (n is None or n.fused is not None or PRIMITIVES[n.op].reduction is None or ndim == 0
            or n.out.spec.dtype.kind != "f"):
        return None
    axes = tuple(range(ndim)) if n.params["axis"] is None else tuple(n.params["axis"])
    return axes if axes == tuple(range(ndim - len(axes), ndim)) else None


def _build(members: list[Node], consts: dict[Var, np.ndarray]) -> tuple[tuple[Var, ...], Graph]:
    defined = {m.out for m in members}
    external: list[Var] = []
    body_consts: dict[Var, np.ndarray] = {}
    for m in members:
        for v in m.inputs:
            if v in defined or v in external or v in body_consts:
                continue
            if v in consts and v.spec.shape == ():
                body_consts[v] = consts[v]
            else:
                external.append(v)
    body = Graph(tuple(external), tuple(members), (members[-1].out,), body_consts)
    return tuple(external), body


def fuse_elementwise(graph: Graph, reductions: bool = True) -> Graph:
    """Collapse chains and trees of elementwise primitives into single fused nodes, each compiled
    to one Numba kernel; a trailing-axes reduction of a group's result joins the group when
    ``reductions`` (it then happens in the kernel's registers), and a lone ``multipass``
    primitive (one whose numpy forward makes several passes over memory, as GELU's eight)
    becomes a kernel of its own.

    Legal because a member's value is needed by no node outside its group, every member's index
    space broadcasts into the group's (inputs and per-row members may broadcast) and only pure
    elementwise primitives join.
    Preserves: every output value (to floating-point reassociation in fused sums and means).
    """
    producer = graph.producers()
    users = graph.users()
    outputs = set(graph.outputs)
    taken: set[Node] = set()
    replaced: dict[Node, Node] = {}  # group root -> fused node
    for n in reversed(graph.nodes):
        if n in taken or not can_lower(n):
            continue
        members = _group(n, producer, users, taken, outputs)
        only_user = users.get(n.out, [None])[0] if len(users.get(n.out, ())) == 1 else None
        legal = reductions and n.out not in outputs
        axes = _suffix_reduction(only_user, len(n.out.spec.shape)) if legal else None
        if axes is not None:
            taken.add(only_user)
        elif len(members) < 2 and not PRIMITIVES[n.op].multipass:
            continue
        taken |= members
        ordered = [m for m in graph.nodes if m in members]
        ins, body = _build(ordered, graph.consts)
        fused = (Fused(body, axes, bool(only_user.params["keepdims"]), only_user.op)
                 if axes is not None else Fused(body))
        out = only_user.out if axes is not None else n.out
        replaced[n] = Node(FUSED, ins, {}, out, fused)
    nodes = []
    for n in graph.nodes:
        if n in replaced:
            nodes.append(replaced[n])
        elif n not in taken:
            nodes.append(n)
    return graph.replace(nodes=tuple(nodes))
