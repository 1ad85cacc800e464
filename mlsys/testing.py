"""Gradient checking against central finite differences in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def numerical_grad(fn: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: np.ndarray,
                   eps: float) -> list[np.ndarray]:
    """d<cotangent, fn(inputs)>/d(input) by central differences, one element at a time."""
    grads = []
    for x in inputs:
        g = np.zeros_like(x.data)
        if x.requires_grad:
            flat, gflat = x.data.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                plus = float((fn(*inputs).data * cotangent).sum())
                flat[i] = old - eps
                minus = float((fn(*inputs).data * cotangent).sum())
                flat[i] = old
                gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(fn: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-4, seed: int = 0) -> bool:
    """Check ``fn``'s reverse-mode gradients against finite differences.

    Inputs must be float64 Tensors (float32 is too coarse for finite differences); those with
    ``requires_grad`` are checked. A random cotangent makes non-scalar outputs checkable too.
    Returns True, or raises :class:`GradcheckError` naming the input, the worst element and both
    values.
    """
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck: input {i} is a {type(x).__name__}, expected a Tensor")
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.dtype}; use float64 inputs")
    out = fn(*inputs)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    for x in inputs:
        x.grad = None
    out.backward(Tensor(cotangent))
    expected = numerical_grad(fn, inputs, cotangent, eps)
    for i, (x, num) in enumerate(zip(inputs, expected)):
        if not x.requires_grad:
            continue
        ana = np.zeros_like(x.data) if x.grad is None else x.grad.data
        err = np.abs(ana - num) - (atol + rtol * np.abs(num))
        if err.size and err.max() > 0:
            worst = np.unravel_index(int(err.argmax()), err.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) at index {tuple(map(int, worst))}: "
                f"analytic {ana[worst]:.6g} vs numerical {num[worst]:.6g}")
    return True
