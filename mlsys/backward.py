"""Reverse-mode accumulation: walk the recorded nodes backwards and apply each VJP rule."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import autograd
from .ops import elementwise as E
from .tensor import Tensor

_FREED = "freed"


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` through recorded nodes, each after all its consumers."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        node = t._node
        if node is not None and node.inputs is not _FREED:
            for x in node.inputs:
                if x.requires_grad and id(x) not in seen:
                    stack.append((x, False))
    order.reverse()
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
    if leaf.grad is None:
        leaf.grad = g if create_graph else Tensor(np.array(g.data, copy=True))
    else:
        leaf.grad = leaf.grad + g if create_graph else Tensor(leaf.grad.data + g.data)
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
                if gx.shape != x.shape:
                    raise AssertionError(f"VJP of {node.prim.name} returned shape {gx.shape} for "
                                         f"an input of shape {x.shape}")
                previous = grads.get(id(x))
                grads[id(x)] = gx if previous is None else E.add(previous, gx)
            if not retain_graph:
                node.inputs = _FREED
