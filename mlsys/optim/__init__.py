"""Optimizers (``mlsys.optim``), shaped like ``torch.optim``; update rules live in ``rules``."""

from . import rules
from .optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "rules"]
