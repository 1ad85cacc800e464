"""A whole training step as one function of Tensors, so that it can be traced as one graph.

The step calls the model, the loss, ``backward`` and the optimizer's ``step`` — the same update
path as an eager loop (there is no second one here) — so ``mlsys.compile`` of it is a compiled
training step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data import DataLoader
from ..nn import Module
from ..nn import functional as F
from ..optim import SGD, Optimizer
from ..tensor import Tensor


class TrainStep:
    """``step(x, y) -> loss``: forward, loss, ``backward``, ``optimizer.step()``, then
    ``optimizer.zero_grad()`` (gradients do not outlive the step). Runs eagerly as it is, or
    under :func:`mlsys.compile`."""

    def __init__(self, model: Module, optimizer: Optimizer,
                 loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss

    @property
    def state_names(self) -> dict[int, str]:
        """Names for the tensors a traced step reads: parameters, buffers, optimizer state."""
        names = {id(t): name for name, t in self.model.named_parameters()}
        names.update({id(t): name for name, t in self.model.named_buffers()})
        for name, p in self.model.named_parameters():
            for key, t in self.optimizer.state.get(id(p), {}).items():
                names[id(t)] = f"{key}.{name}"
        return names


def sgd_step(model: Module, lr: float, momentum: float = 0.0,
             loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> TrainStep:
    """``TrainStep(model, SGD(model.parameters(), lr, momentum=momentum), loss_fn)``."""
    return TrainStep(model, SGD(model.parameters(), lr=lr, momentum=momentum), loss_fn)


def run_epochs(step: Callable[[Tensor, Tensor], Tensor], loader: DataLoader,
               epochs: int = 1) -> list[float]:
    """Call ``step(x, y)`` on every batch for ``epochs``; returns each epoch's mean loss."""
    if epochs < 1:
        raise ValueError(f"run_epochs: epochs must be at least 1, got {epochs}")
    return [float(np.mean([float(step(x, y).item()) for x, y in loader])) for _ in range(epochs)]
