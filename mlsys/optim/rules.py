"""Update rules as pure functions of arrays.

Written with arithmetic operators (and a square root) only. The optimizers apply them to
Tensors, so that the same update runs eagerly and, traced, becomes part of a compiled step's
graph; they run on numpy arrays too (``step`` may then be a Python number).
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or mlsys.Tensor


def _sqrt(x: Array) -> Array:
    """``x ** 0.5`` as a square root (correctly rounded and vectorizable, unlike ``pow``): the
    ``sqrt`` primitive on a Tensor, numpy's on an array or a number."""
    return x.sqrt() if hasattr(x, "sqrt") else np.sqrt(x)


def sgd(param: Array, grad: Array, momentum_buffer: Array | None, *, lr: float,
        momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
        dampening: float = 0.0) -> tuple[Array, Array | None]:
    """One SGD step; returns (new parameter, new momentum buffer or None)."""
    if weight_decay:
        grad = grad + weight_decay * param
    if momentum:
        if momentum_buffer is None:
            momentum_buffer = grad
        else:
            momentum_buffer = momentum * momentum_buffer + (1.0 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    return param - lr * grad, momentum_buffer


def adam(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, step: int, *, lr: float,
         beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
         decoupled: bool = False) -> tuple[Array, Array, Array]:
    """One Adam (``decoupled=False``) or AdamW step; ``step`` counts from 1.

    Returns (new parameter, new first moment, new second moment).
    """
    if weight_decay and decoupled:
        param = param * (1.0 - lr * weight_decay)
    elif weight_decay:
        grad = grad + weight_decay * param
    exp_avg = beta1 * exp_avg + (1.0 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1.0 - beta2) * grad * grad
    bias1, bias2 = 1.0 - beta1**step, 1.0 - beta2**step
    denom = _sqrt(exp_avg_sq / bias2) + eps
    return param - (lr / bias1) * exp_avg / denom, exp_avg, exp_avg_sq
