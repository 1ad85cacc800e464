"""Tracing: run a Tensor program once, eagerly, and record every primitive it applies.

The tracer is an observer of :func:`mlsys.tensor.apply` (``add_observer``), so it sees the forward
pass, the backward pass (VJP rules are written with primitives) and an optimizer update written
with :mod:`mlsys.optim.rules`: a whole training step becomes one graph — autodiff as a graph
transformation. Tensors the program reads but did not make are classified when first seen:

* the function's Tensor arguments become the graph's inputs, in order;
* leaves that require grad (parameters), and tensors the program :func:`assign` s to, are
  *captured*: they become further inputs, read afresh on every call;
* every other outside tensor (a scalar lifted by ``x * 2``, a VJP's constant) is a constant.

While tracing, ``backward`` accumulates each leaf's gradient as a recorded tensor rather than a
detached copy, so ``p.grad`` read afterwards is a value of the graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backward as _backward
from ..ops.registry import Primitive, Spec
from ..tensor import Tensor, add_observer, remove_observer
from .ir import Graph, Node, Var, fresh

__all__ = ["trace", "assign", "Traced"]

_active: list[_Recorder] = []


class _Recorder:
    """The observer: maps tensors to graph values and appends one node per primitive."""

    def __init__(self, state_names: Mapping[int, str]) -> None:
        self.state_names = state_names
        self.vars: dict[int, Var] = {}
        self.alive: list[Tensor] = []  # keeps every seen tensor alive, so ids stay unique
        self.nodes: list[Node] = []
        self.inputs: list[Var] = []
        self.names: dict[Var, str] = {}
        self.captured: list[tuple[Var, Tensor]] = []
        self.consts: dict[Var, np.ndarray] = {}
        self.updates: dict[Var, Var] = {}

    def bind(self, t: Tensor, var: Var) -> Var:
        self.vars[id(t)] = var
        self.alive.append(t)
        return var

    def add_input(self, t: Tensor, name: str) -> Var:
        var = fresh(Spec.of(t.data))
        self.inputs.append(var)
        self.names[var] = name
        return self.bind(t, var)

    def var_of(self, t: Tensor) -> Var:
        var = self.vars.get(id(t))
        if var is not None:
            return var
        if t.is_leaf and t.requires_grad:
            return self.capture(t)
        var = fresh(Spec.of(t.data))
        self.consts[var] = np.array(t.data, copy=True)
        return self.bind(t, var)

    def capture(self, t: Tensor, var: Var | None = None) -> Var:
        var = var or fresh(Spec.of(t.data))
        self.captured.append((var, t))
        self.names[var] = self.state_names.get(id(t), f"state{len(self.captured) - 1}")
        return self.bind(t, var)

    def record(self, prim: Primitive, inputs: tuple[Tensor, ...], params: dict[str, Any],
               out: Tensor) -> None:
        ins = tuple(self.var_of(t) for t in inputs)
        var = fresh(Spec.of(out.data))
        self.nodes.append(Node(prim.name, ins, dict(params), var))
        self.bind(out, var)

    def assign(self, target: Tensor, value: Tensor) -> None:
        old = self.vars.get(id(target))
        if old is None or old in self.consts:
            const = self.consts.pop(old, None) if old is not None else None
            old = self.capture(target, old if const is not None else None)
        elif old not in {v for v, _ in self.captured}:
            raise ValueError(f"assign: the target ({old}) is an argument or was computed inside the "
                             f"traced function; only captured state (parameters, buffers) can be "
                             f"assigned")
        self.updates[old] = self.var_of(value)
        self.bind(target, self.updates[old])


def assign(target: Tensor, value: Tensor) -> None:
    """``target.data = value.data``; when tracing, recorded as a state update of the graph.

    This is how a traced step writes new parameters and optimizer state back (functionalized:
    the graph returns the new values, the compiled function stores them).
    """
    if not isinstance(target, Tensor) or not isinstance(value, Tensor):
        raise TypeError(f"assign: expected two Tensors, got {type(target).__name__} and "
                        f"{type(value).__name__}")
    if target.shape != value.shape:
        raise ValueError(f"assign: value of shape {value.shape} does not fit target of shape "
                         f"{target.shape}")
    if _active:
        _active[-1].assign(target, value)
    target.data = np.array(value.data, dtype=target.dtype, copy=True)


@dataclass
class Traced:
    """A traced program: the graph, the captured state tensors and how to rebuild the result.

    ``graph.inputs`` are the arguments then the captured tensors; ``graph.outputs`` are the
    flattened results then the new values of the ``updated`` captured tensors.
    """

    graph: Graph
    n_args: int
    captured: list[Tensor]
    updated: list[Tensor]
    structure: str  # "none", "tensor" or "tuple"
    n_results: int
    result: Any  # what the eager run returned


@contextlib.contextmanager
def _recording(recorder: _Recorder) -> Iterator[None]:
    original = _backward._accumulate_leaf

    def accumulate(leaf: Tensor, g: Tensor, create_graph: bool) -> None:
        original(leaf, g, True)  # keep the recorded gradient (and record accumulation)

    _active.append(recorder)
    add_observer(recorder)
    _backward._accumulate_leaf = accumulate
    try:
        yield
    finally:
        _backward._accumulate_leaf = original
        remove_observer(recorder)
        _active.pop()


def _flatten(result: Any) -> tuple[str, list[Tensor]]:
    if result is None:
        return "none", []
    if isinstance(result, Tensor):
        return "tensor", [result]
    if isinstance(result, (tuple, list)) and all(isinstance(r, Tensor) for r in result):
        return "tuple", list(result)
    raise TypeError(f"trace: the function must return None, a Tensor or a tuple of Tensors, got "
                    f"{type(result).__name__}")


def trace(fn: Callable[..., Any], *args: Any, state_names: Mapping[int, str] | None = None) -> Traced:
    """Run ``fn(*args)`` once and record it as a graph (see the module docstring).

    ``state_names`` labels captured tensors by ``id`` (default: ``fn.state_names`` if present,
    else ``state0``, ``state1``...).
    """
    if _active:
        raise RuntimeError("trace: already tracing; nested tracing is not supported")
    recorder = _Recorder(state_names or getattr(fn, "state_names", {}))
    names = iter(_arg_names(fn, len(args)))
    for a in args:
        name = next(names)
        if isinstance(a, Tensor):
            recorder.add_input(a, name)
    with _recording(recorder):
        result = fn(*args)
    structure, results = _flatten(result)
    outputs = [recorder.var_of(t) for t in results]
    captured = [t for _, t in recorder.captured]
    updated = [(v, t) for v, t in recorder.captured if v in recorder.updates]
    graph = Graph(
        inputs=tuple(recorder.inputs) + tuple(v for v, _ in recorder.captured),
        nodes=tuple(recorder.nodes),
        outputs=tuple(outputs) + tuple(recorder.updates[v] for v, _ in updated),
        consts=dict(recorder.consts), names=dict(recorder.names))
    return Traced(graph.verify(), len(recorder.inputs), captured, [t for _, t in updated],
                  structure, len(outputs), result)


def _arg_names(fn: Callable[..., Any], n: int) -> list[str]:
    code = getattr(fn, "__code__", None)
    names = list(code.co_varnames[:code.co_argcount]) if code else []
    return (names + [f"arg{i}" for i in range(len(names), n)])[:n]
