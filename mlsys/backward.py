"""Reverse-mode accumulation: walk the recorded nodes backwards and apply each VJP rule."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import autograd
from .ops import elementwise as E
from .tensor import Tensor

_FREED = "freed"


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` through recorded nodes, each after all its consumers.

    Kahn's algorithm with a stack: a tensor is emitted as soon as its last consumer is, so a
    parameter's gradient is final (and its hooks fire) right after the layer that uses it, the last
    layer first. Data-parallel training overlaps its all-reduces with the rest of backward on that.
    """
    pending: dict[int, int] = {}
    stack, seen = [root], {id(root)}
    while stack:
        node = stack.pop()._node
        if node is None or node.inputs is _FREED:
            continue
        for x in node.inputs:
            if x.requires_grad:
                pending[id(x)] = pending.get(id(x), 0) + 1
                if id(x) not in seen:
                    seen.add(id(x))
                    stack.append(x)
    order, ready = [], [root]
    while ready:
        t = ready.pop()
        order.append(t)
        node = t._node
        if node is None or node.inputs is _FREED:
            continue
        for x in node.inputs:
            if x.requires_grad:
                pending[id(x)] -= 1
                if not pending[id(x)]:
                    ready.append(x)
    return order


def _seed(root: Tensor, gradient: Any) -> Tensor:
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"backward: grad can be created implicitly only for a scalar output; "
                               f"this tensor has shape {root.shape}, so pass a gradient of that shape")
        return Tensor(np.ones_like(root.data))
    g = gradient if isinstance(gradient, Tensor) else Tensor(np.asarray(gradient))
    if g.shape != root.shape:
        raise ValueError(f"backward: gradient has shape {g.shape} but the output has shape "
                         f"{root.shape}")
    return g.to(root.dtype)


def _accumulate_leaf(leaf: Tensor, g: Tensor, create_graph: bool) -> None:
    # Primitives, so an observer (the graph tracer) sees gradients as values; the tape records
    # them only with create_graph.
    if leaf.grad is None:
        leaf.grad = g if create_graph else g.clone()
    else:
        leaf.grad = leaf.grad + g
    for hook in leaf._hooks or ():
        hook(leaf)


def run_backward(root: Tensor, gradient: Any, *, retain_graph: bool, create_graph: bool) -> None:
    """Accumulate gradients of ``root`` into the ``.grad`` of every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError("backward: this tensor does not require grad (no input to it requires "
                           "grad, or it was computed under no_grad)")
    grads: dict[int, Tensor] = {id(root): _seed(root, gradient)}
    with autograd.set_grad_enabled(create_graph):
        for t in _topological_order(root):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            node = t._node
            if node is None:
                _accumulate_leaf(t, g, create_graph)
                continue
            if node.inputs is _FREED:
                raise RuntimeError(
                    f"backward: trying to go through the graph a second time (at "
                    f"{node.prim.name}); its saved tensors were freed after the first backward. "
                    f"Pass retain_graph=True to the first backward if you need to do this.")
            if t._retains_grad:
                t.grad = g
            in_grads = node.prim.vjp(g, t, *node.inputs, **node.params)
            for x, gx in zip(node.inputs, in_grads):
                if gx is None or not x.requires_grad:
                    continue
                if gx.data.shape != x.data.shape:
                    raise AssertionError(f"VJP of {node.prim.name} returned shape {gx.shape} for "
                                         f"an input of shape {x.shape}")
                key = id(x)
                previous = grads.get(key)
                grads[key] = gx if previous is None else E.add(previous, gx)
            if not retain_graph:
                node.inputs = _FREED
