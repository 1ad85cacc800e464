"""Random Tensor programs for testing passes: elementwise chains and trees with broadcasting,
redundancy (for CSE), identities (for simplification), shape chains and reductions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import mlsys
from mlsys import Tensor

SHAPE = (4, 6)


def _ops(rng: np.random.Generator) -> list[Callable[[list[Tensor]], Tensor]]:
    def pick() -> int:
        return int(rng.integers(0, 1 << 30))

    return [
        lambda vs: vs[pick() % len(vs)] + vs[pick() % len(vs)],
        lambda vs: vs[pick() % len(vs)] * vs[pick() % len(vs)],
        lambda vs: vs[pick() % len(vs)] - vs[-1],
        lambda vs: vs[pick() % len(vs)].relu(),
        lambda vs: vs[pick() % len(vs)].tanh(),
        lambda vs: vs[pick() % len(vs)].sigmoid(),
        lambda vs: -vs[pick() % len(vs)],
        lambda vs: vs[pick() % len(vs)] * 1.0 + 0.0,
        lambda vs: (vs[pick() % len(vs)] * 0.5).exp(),
        lambda vs: vs[pick() % len(vs)].T.T,
        lambda vs: vs[pick() % len(vs)].reshape(6, 4).reshape(24).reshape(*SHAPE),
        lambda vs: vs[pick() % len(vs)] + vs[pick() % len(vs)].sum(1, keepdim=True),
        lambda vs: mlsys.where(vs[-1] > 0, vs[pick() % len(vs)], vs[0]),
        lambda vs: mlsys.maximum(vs[pick() % len(vs)], vs[-1]),
        lambda vs: vs[-1] * (mlsys.ones(SHAPE) * 2.0 + 1.0),  # a constant subgraph to fold
    ]


def make_program(seed: int, length: int = 10) -> Callable[[Tensor, Tensor], tuple[Tensor, ...]]:
    """``f(x, b)`` with x of shape (4, 6) and b of shape (6,) (broadcast), returning 2 values."""
    rng = np.random.default_rng(seed)
    choices = rng.integers(0, 1 << 30, size=length)

    def program(x: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        ops = _ops(np.random.default_rng(seed + 1))
        values = [x, x + b]
        for c in choices:
            values.append(ops[int(c) % len(ops)](values))
        return values[-1], values[len(values) // 2].sum(1)

    return program


def inputs(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1000 + seed)
    return [rng.standard_normal(SHAPE).astype(np.float32),
            rng.standard_normal(SHAPE[1:]).astype(np.float32)]
