"""A plain training loop and evaluation, used by the chapters, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .autograd import no_grad
from .data import DataLoader
from .nn import Module
from .nn import functional as F
from .optim import Optimizer
from .tensor import Tensor


@dataclass
class History:
    """Per-epoch mean training loss and test accuracy."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def train_step(model: Module, optimizer: Optimizer, x: Tensor, y: Tensor,
               loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> float:
    """Forward, loss, backward and update on one batch; returns the loss."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return float(loss.item())


def evaluate(model: Module, loader: DataLoader) -> float:
    """Classification accuracy of ``model`` over ``loader`` (in eval mode, without gradients)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    with no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1).data == y.data).sum())
            total += len(y)
    model.train(was_training)
    return correct / total


def fit(model: Module, optimizer: Optimizer, train: DataLoader, test: DataLoader | None = None,
        epochs: int = 10) -> History:
    """Train for ``epochs``, recording mean loss and (when ``test`` is given) accuracy."""
    history = History()
    for _ in range(epochs):
        model.train()
        losses = [train_step(model, optimizer, x, y) for x, y in train]
        history.loss.append(float(np.mean(losses)))
        if test is not None:
            history.accuracy.append(evaluate(model, test))
    return history
