"""A whole SGD training step written with Tensors, so that it can be traced as one graph."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data import DataLoader
from ..nn import Module
from ..nn import functional as F
from ..optim import rules
from ..tensor import Tensor
from .tracer import assign


def sgd_step(model: Module, lr: float, momentum: float = 0.0,
             loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
             ) -> Callable[[Tensor, Tensor], Tensor]:
    """``step(x, y) -> loss``: forward, loss, ``backward``, and the update of
    :func:`mlsys.optim.rules.sgd` stored with :func:`assign` (runs eagerly as it is, or under
    :func:`mlsys.compile`). Equivalent to ``mlsys.optim.SGD(model.parameters(), lr, momentum)``.
    """
    if lr < 0 or not 0.0 <= momentum < 1.0:
        raise ValueError(f"sgd_step: need lr >= 0 and 0 <= momentum < 1, got lr={lr}, "
                         f"momentum={momentum}")
    named = list(model.named_parameters())
    buffers = [Tensor(np.zeros_like(p.data)) for _, p in named] if momentum else None

    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = loss_fn(model(x), y)
        loss.backward()
        for k, (_, p) in enumerate(named):
            new, buf = rules.sgd(p, p.grad, buffers[k] if buffers else None, lr=lr,
                                 momentum=momentum)
            assign(p, new)
            if buffers:
                assign(buffers[k], buf)
            p.grad = None
        return loss

    step.state_names = {id(p): name for name, p in named}
    if buffers:
        step.state_names.update({id(b): f"momentum.{name}" for (name, _), b in zip(named, buffers)})
    return step


def run_epochs(step: Callable[[Tensor, Tensor], Tensor], loader: DataLoader,
               epochs: int = 1) -> list[float]:
    """Call ``step(x, y)`` on every batch for ``epochs``; returns each epoch's mean loss."""
    if epochs < 1:
        raise ValueError(f"run_epochs: epochs must be at least 1, got {epochs}")
    return [float(np.mean([float(step(x, y).item()) for x, y in loader])) for _ in range(epochs)]
