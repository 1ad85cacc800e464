"""Reverse-mode accumulation: walk the recorded nodes backwards and apply each VJP rule."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import autograd
from .ops import elementwise as E
from .tensor import Node, Tensor, _made, _observers, _owner, _version_of, _wrap
from .versions import CLOCK, written_since

_FREED = "freed"


def _consumer_counts(roots: Sequence[Tensor]) -> dict[int, int]:
    """For each tensor reachable from ``roots`` that requires grad, how many recorded inputs of
    the nodes reachable from ``roots`` it is (by ``id``)."""
    pending: dict[int, int] = {}
    stack, root_ids = list(roots), set(map(id, roots))
    while stack:
        node = stack.pop()._node
        if node is None or node.inputs is _FREED:
            continue
        for x in node.inputs:
            if x.requires_grad:
                key = id(x)
                if key in pending:
                    pending[key] += 1
                else:
                    pending[key] = 1
                    if key not in root_ids:
                        stack.append(x)
    return pending


def _in_order(roots: Sequence[Tensor]) -> Iterator[Tensor]:
    """Tensors reachable from ``roots`` through recorded nodes, each after all its consumers.

    Kahn's algorithm with a stack: a tensor is emitted as soon as its last consumer is, so a
    parameter's gradient is final (and its hooks fire) right after the layer that uses it, the last
    layer first. Data-parallel training overlaps its all-reduces with the rest of backward on that.
    A tensor's inputs are read before it is yielded, so the caller may free its node meanwhile.
    """
    pending = _consumer_counts(roots)
    ready = [r for r in roots if not pending.get(id(r))]
    while ready:
        t = ready.pop()
        node = t._node
        inputs = () if node is None or node.inputs is _FREED else node.inputs
        yield t
        for x in inputs:
            if x.requires_grad:
                key = id(x)
                left = pending[key] - 1
                pending[key] = left
                if not left:
                    ready.append(x)


def _seed(root: Tensor, gradient: Any) -> Tensor:
    if gradient is None:
        if root._data.size != 1:
            raise RuntimeError(f"backward: grad can be created implicitly only for a scalar output; "
                               f"this tensor has shape {root.shape}, so pass a gradient of that shape")
        return _made(np.ones(root.shape, root.dtype), root.device)  # made on root's device
    g = gradient if isinstance(gradient, Tensor) else Tensor(np.asarray(gradient))
    if g.shape != root.shape:
        raise ValueError(f"backward: gradient has shape {g.shape} but the output has shape "
                         f"{root.shape}")
    return g.to(root.dtype).to(root.device)


def _accumulate_leaf(leaf: Tensor, g: Tensor, create_graph: bool) -> None:
    # With create_graph, or an observer (the graph tracer) watching, primitives: the gradient is then
    # a value of the tape or of the trace; otherwise plain arrays, the eager training hot path
    # (device arrays are added by the device's kernels: primitives too).
    if g.device != leaf.device:
        g = g.to(leaf.device)
    if create_graph or _observers or type(g._data) is not np.ndarray:
        leaf.grad = (g if create_graph else g.clone()) if leaf.grad is None else leaf.grad + g
    elif leaf.grad is None:
        leaf.grad = _wrap(np.array(g._data, copy=True), leaf.device)
    else:
        leaf.grad = _wrap(leaf.grad._data + g._data, leaf.device)
    for hook in leaf._hooks or ():
        hook(leaf)


def _check_versions(t: Tensor, node: Node) -> None:
    """Refuse to use a saved value that was written in place after the node saved it."""
    for i, x in enumerate((*node.inputs, t)):
        if written_since(_owner(x)._counter, node.saved_at):
            what = "its output" if x is t else f"its input {i}"
            raise RuntimeError(
                f"backward: {what} ({x.dtype}{list(x.shape)}), needed to compute the gradient of "
                f"{node.prim.name}, was modified in place after it was saved (it is now at "
                f"version {_version_of(x)}); compute on a clone(), or edit after backward")


def run_backward(root: Tensor | Sequence[Tensor], gradient: Any, *, retain_graph: bool,
                 create_graph: bool, inputs: Sequence[Tensor] | None = None) -> list[Tensor | None]:
    """Accumulate gradients of ``root`` into the ``.grad`` of every leaf that requires grad.

    Several roots (with one gradient each) sum their contributions. With ``inputs``, return the
    gradients with respect to those tensors instead (leaves or not), touching no ``.grad``.
    """
    roots = [root] if isinstance(root, Tensor) else list(root)
    seeds = [gradient] if isinstance(root, Tensor) else list(gradient)
    for r in roots:
        if not r.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no input to it "
                               "requires grad, or it was computed under no_grad)")
    wanted = None if inputs is None else {id(x): None for x in inputs}
    grads: dict[int, Tensor] = {}
    # VJP rules may compute an inf or NaN they then mask away (pow at base 0): no warnings for those
    with autograd.set_grad_enabled(create_graph), np.errstate(divide="ignore", invalid="ignore"):
        for r, s in zip(roots, seeds):
            g = _seed(r, s)
            grads[id(r)] = g if id(r) not in grads else E.add(grads[id(r)], g)
        now = CLOCK[0]
        for t in _in_order(roots):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if wanted is not None and id(t) in wanted:
                wanted[id(t)] = g
            node = t._node
            if node is None:
                if wanted is None:
                    _accumulate_leaf(t, g, create_graph)
                continue
            if node.inputs is _FREED:
                raise RuntimeError(
                    f"backward: trying to go through the graph a second time (at "
                    f"{node.prim.name}); its saved tensors were freed after the first backward. "
                    f"Pass retain_graph=True to the first backward if you need to do this.")
            if node.saved_at != now:  # something was written since: was it a saved value?
                _check_versions(t, node)
            if t._retains_grad and wanted is None:
                t.grad = g
            in_grads = node.prim.vjp(g, t, *node.inputs, **node.params)
            for x, gx in zip(node.inputs, in_grads):
                if gx is None or not x.requires_grad:
                    continue
                if gx._data.shape != x._data.shape:
                    raise AssertionError(f"VJP of {node.prim.name} returned shape {gx.shape} for "
                                         f"an input of shape {x.shape}")
                if gx._data.dtype != x._data.dtype:  # a gradient has its input's dtype
                    gx = E.cast(gx, dtype=x.dtype)
                key = id(x)
                previous = grads.get(key)
                grads[key] = gx if previous is None else E.add(previous, gx)
            if not retain_graph:
                node.inputs = _FREED
    return [] if wanted is None else [wanted[id(x)] for x in inputs]
