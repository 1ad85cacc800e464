"""The graph IR: SSA values over the primitives of :mod:`mlsys.ops`.

A :class:`Graph` is a straight-line program: typed inputs, constants, a list of :class:`Node` in
topological order, and outputs. Each node applies one registered primitive (by name: there is no
second op list) to earlier values and defines exactly one new value, so every value has one
definition (static single assignment). A node may instead hold a *fused group*: a small graph of
elementwise primitives that the fusion pass collapsed into one generated kernel.

The text form reads like a jaxpr or a ``torch.fx`` printout::

    graph(%0: f32[32,64] x, %1: f32[128,64] w) {
      %2: f32[64,128] = permute %1 axes=(1, 0)
      %3: f32[32,128] = matmul %0, %2
      return %3
    }
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops.registry import PRIMITIVES, Cost, Spec

__all__ = ["Var", "Node", "Fused", "Graph", "FUSED", "fresh", "GraphError"]

FUSED = "fused"
_ids = itertools.count()


class GraphError(ValueError):
    """A graph breaks an invariant of the IR (raised by :meth:`Graph.verify`)."""


@dataclass(frozen=True)
class Var:
    """One SSA value: a unique id and the abstract value (shape, dtype) it holds."""

    id: int
    spec: Spec

    def __repr__(self) -> str:
        return f"%{self.id}"


def fresh(spec: Spec) -> Var:
    """A new value with a never-used id."""
    return Var(next(_ids), Spec(tuple(int(n) for n in spec.shape), np.dtype(spec.dtype)))


@dataclass(frozen=True)
class Fused:
    """A fused group: an elementwise ``body`` graph, optionally reduced over trailing ``axes`` by
    the reduction primitive ``reduce_op``."""

    body: Graph
    reduce_axes: tuple[int, ...] | None = None
    keepdims: bool = False
    reduce_op: str = "sum"

    @property
    def reduces(self) -> bool:
        return self.reduce_axes is not None


@dataclass(frozen=True, eq=False)
class Node:
    """``out = op(*inputs, **params)``; ``op`` is a primitive name, or ``"fused"`` with ``fused``."""

    op: str
    inputs: tuple[Var, ...]
    params: Mapping[str, Any]
    out: Var
    fused: Fused | None = None

    def key(self) -> tuple | None:
        """A hashable identity of what this node computes, or None if a parameter is unhashable."""
        try:
            items = tuple(sorted(self.params.items()))
            hash(items)
        except TypeError:
            return None
        return (self.op, self.inputs, items, id(self.fused) if self.fused else None)

    @property
    def pure(self) -> bool:
        return self.fused is not None or PRIMITIVES[self.op].pure

    @property
    def elementwise(self) -> bool:
        return self.fused is None and PRIMITIVES[self.op].elementwise

    def cost(self) -> Cost:
        """FLOPs and bytes moved, from the primitives' cost rules (a fused group moves only its
        external inputs and output: that is the point of fusing)."""
        if self.fused is None:
            return PRIMITIVES[self.op].cost(*(v.spec for v in self.inputs), out=self.out.spec,
                                            **self.params)
        flops = sum(n.cost().flops for n in self.fused.body.nodes)
        if self.fused.reduces:
            flops += self.fused.body.outputs[0].spec.size
        moved = sum(v.spec.nbytes for v in set(self.inputs)) + self.out.spec.nbytes
        return Cost(flops, moved)

    def replace(self, **changes: Any) -> Node:
        fields = {"op": self.op, "inputs": self.inputs, "params": self.params, "out": self.out,
                  "fused": self.fused}
        return Node(**{**fields, **changes})


@dataclass(frozen=True)
class Graph:
    """Inputs, constants, nodes in topological order, outputs; ``names`` labels some values."""

    inputs: tuple[Var, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Var, ...]
    consts: Mapping[Var, np.ndarray] = field(default_factory=dict)
    names: Mapping[Var, str] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Graph:
        fields = {"inputs": self.inputs, "nodes": self.nodes, "outputs": self.outputs,
                  "consts": self.consts, "names": self.names}
        return Graph(**{**fields, **changes})

    # -- queries ---------------------------------------------------------------------------
    def producers(self) -> dict[Var, Node]:
        return {n.out: n for n in self.nodes}

    def users(self) -> dict[Var, list[Node]]:
        """Every value's consuming nodes, in program order."""
        out: dict[Var, list[Node]] = {}
        for n in self.nodes:
            for v in n.inputs:
                out.setdefault(v, []).append(n)
        return out

    def cost(self) -> Cost:
        return sum((n.cost() for n in self.nodes), Cost(0, 0))

    def stats(self) -> dict[str, Any]:
        """Node count, fused groups, FLOPs and bytes moved (the pass manager prints these)."""
        c = self.cost()
        return {"nodes": len(self.nodes), "fused": sum(n.fused is not None for n in self.nodes),
                "consts": len(self.consts), "flops": c.flops, "bytes": c.bytes}

    # -- checking -----------------------------------------------------------------------------
    def verify(self) -> Graph:
        """Check SSA form, topological order, known ops and every shape rule; return self."""
        defined: set[Var] = set()
        for v in (*self.inputs, *self.consts):
            if v in defined:
                raise GraphError(f"{v} is defined twice (as an input or constant)")
            defined.add(v)
        for v, array in self.consts.items():
            if Spec.of(np.asarray(array)) != v.spec:
                raise GraphError(f"constant {v} holds {Spec.of(np.asarray(array))}, "
                                 f"declared {v.spec}")
        for n in self.nodes:
            for v in n.inputs:
                if v not in defined:
                    raise GraphError(f"{n.op} node defining {n.out} uses {v} before its definition")
            if n.out in defined:
                raise GraphError(f"{n.out} is defined twice (SSA form requires one definition)")
            _check_node(n)
            defined.add(n.out)
        for v in self.outputs:
            if v not in defined:
                raise GraphError(f"output {v} is never defined")
        return self

    # -- printing -----------------------------------------------------------------------------
    def text(self, indent: str = "  ") -> str:
        """The readable form: a header of typed inputs, one line per node, the return."""
        args = ", ".join(f"{v}: {show_spec(v.spec)}{_label(self, v)}" for v in self.inputs)
        lines = [f"graph({args}) {{"]
        for v, array in self.consts.items():
            lines.append(f"{indent}{v}: {show_spec(v.spec)} = const {_show_array(array)}")
        for n in self.nodes:
            lines.append(indent + node_text(n))
            if n.fused is not None:
                for inner in n.fused.body.nodes:
                    lines.append(indent * 3 + node_text(inner))
        lines.append(f"{indent}return {', '.join(map(repr, self.outputs))}")
        lines.append("}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        s = self.stats()
        return f"<Graph: {len(self.inputs)} inputs, {s['nodes']} nodes, {len(self.outputs)} outputs>"


_SHORT = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64", "int32": "i32",
          "bool": "bool"}


def show_spec(spec: Spec) -> str:
    """``f32[32,64]``: a compact dtype and shape."""
    name = np.dtype(spec.dtype).name
    return f"{_SHORT.get(name, name)}[{','.join(map(str, spec.shape))}]"


def _label(graph: Graph, v: Var) -> str:
    name = graph.names.get(v)
    return f" {name}" if name else ""


def _show_array(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.size <= 4:
        return np.array2string(a, precision=4, separator=",").replace("\n", "")
    return f"<{show_spec(Spec.of(a))} array>"


def _show_param(value: Any) -> str:
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value)


def node_text(n: Node) -> str:
    """One node as ``%5: f32[32,128] = add %3, %4`` (parameters as key=value)."""
    op = n.op
    if n.fused is not None:
        inner = "+".join(m.op for m in n.fused.body.nodes)
        red = f"->{n.fused.reduce_op}{n.fused.reduce_axes}" if n.fused.reduces else ""
        op = f"fused[{inner}{red}]"
    params = " ".join(f"{k}={_show_param(v)}" for k, v in n.params.items())
    args = ", ".join(map(repr, n.inputs))
    return f"{n.out}: {show_spec(n.out.spec)} = {op} {args}{' ' + params if params else ''}".rstrip()


def _check_node(n: Node) -> None:
    if n.fused is not None:
        if n.op != FUSED:
            raise GraphError(f"a node holding a fused group must have op {FUSED!r}, got {n.op!r}")
        body = n.fused.body.verify()
        if len(body.inputs) != len(n.inputs):
            raise GraphError(f"fused node {n.out}: {len(n.inputs)} inputs for a body of "
                             f"{len(body.inputs)}")
        for outer, inner in zip(n.inputs, body.inputs):
            if outer.spec != inner.spec:
                raise GraphError(f"fused node {n.out}: input {outer} is {outer.spec}, body expects "
                                 f"{inner.spec}")
        return
    if n.op not in PRIMITIVES:
        raise GraphError(f"node {n.out} applies unknown primitive {n.op!r}")
    try:
        spec = PRIMITIVES[n.op].shape(*(v.spec for v in n.inputs), **n.params)
    except (TypeError, ValueError, IndexError) as e:
        raise GraphError(f"node {n.out} = {n.op}: its shape rule rejects the inputs: {e}") from None
    if Spec(tuple(spec.shape), np.dtype(spec.dtype)) != n.out.spec:
        raise GraphError(f"node {n.out} = {n.op} declares {n.out.spec} but the shape rule gives {spec}")


def rename(graph: Graph, mapping: Mapping[Var, Var]) -> Graph:
    """Replace uses of values by ``mapping`` (following chains), dropping nothing."""

    def resolve(v: Var) -> Var:
        while v in mapping:
            v = mapping[v]
        return v

    nodes = tuple(n.replace(inputs=tuple(resolve(v) for v in n.inputs)) for n in graph.nodes)
    return graph.replace(nodes=nodes, outputs=tuple(resolve(v) for v in graph.outputs))
