"""The course's reference models, shared by the chapters, benchmarks, compiler and DDP."""

from __future__ import annotations

from . import nn


def mlp(in_features: int = 64, hidden: int = 128, classes: int = 10, depth: int = 2) -> nn.Sequential:
    """A ReLU multilayer perceptron with ``depth`` hidden layers of width ``hidden``."""
    if depth < 1:
        raise ValueError(f"mlp: depth must be at least 1, got {depth}")
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def small_cnn(channels: int = 16, classes: int = 10) -> nn.Sequential:
    """Two conv-ReLU-maxpool stages and a linear classifier, for (N, 1, 8, 8) digit images."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * channels * 2 * 2, classes),
    )
