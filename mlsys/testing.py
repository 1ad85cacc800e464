"""Gradient checking against central finite differences in float64: first derivatives
(:func:`gradcheck`) and second ones (:func:`gradgradcheck`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .autograd import grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def numerical_grad(fn: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: np.ndarray,
                   eps: float) -> list[np.ndarray]:
    """d<cotangent, fn(inputs)>/d(input) by central differences, one element at a time."""
    grads = []
    for x in inputs:
        g = np.zeros_like(x._data)
        if x.requires_grad:
            flat, gflat = x._data.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                plus = float((fn(*inputs)._data * cotangent).sum())
                flat[i] = old - eps
                minus = float((fn(*inputs)._data * cotangent).sum())
                flat[i] = old
                gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def _check_inputs(name: str, inputs: Sequence[Tensor]) -> None:
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input {i} is a {type(x).__name__}, expected a Tensor")
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"{name}: input {i} has dtype {x.dtype}; use float64 inputs")


def gradcheck(fn: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-4, seed: int = 0) -> bool:
    """Check ``fn``'s reverse-mode gradients against finite differences.

    Inputs must be float64 Tensors (float32 is too coarse for finite differences); those with
    ``requires_grad`` are checked. A random cotangent makes non-scalar outputs checkable too.
    Returns True, or raises :class:`GradcheckError` naming the input, the worst element and both
    values.
    """
    _check_inputs("gradcheck", inputs)
    out = fn(*inputs)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    for x in inputs:
        x.grad = None
    out.backward(Tensor(cotangent))
    expected = numerical_grad(fn, inputs, cotangent, eps)
    for i, (x, num) in enumerate(zip(inputs, expected)):
        if not x.requires_grad:
            continue
        ana = np.zeros_like(x._data) if x.grad is None else x.grad._data
        err = np.abs(ana - num) - (atol + rtol * np.abs(num))
        if err.size and err.max() > 0:
            worst = np.unravel_index(int(err.argmax()), err.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) at index {tuple(map(int, worst))}: "
                f"analytic {ana[worst]:.6g} vs numerical {num[worst]:.6g}")
    return True


def gradgradcheck(fn: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0) -> bool:
    """Check ``fn``'s second derivatives: its VJP, computed with ``create_graph=True``, must itself
    have the gradients finite differences give, with respect to the inputs and to the cotangent.

    The VJP is reduced to a scalar along random directions, so every second derivative takes part.
    """
    _check_inputs("gradgradcheck", inputs)
    rng = np.random.default_rng(seed + 1)
    out = fn(*inputs)
    cotangent = Tensor(rng.standard_normal(out.shape).astype(out.dtype), requires_grad=True)
    wrt = [i for i, x in enumerate(inputs) if x.requires_grad]
    directions = [Tensor(rng.standard_normal(inputs[i].shape)) for i in wrt]

    def vjp_along_directions(*args: Tensor) -> Tensor:
        *xs, g = args
        grads = grad(fn(*xs), [xs[i] for i in wrt], grad_outputs=g, create_graph=True,
                     allow_unused=True)
        total = (g * 0.0).sum()  # keeps the cotangent in the graph when every gradient is None
        for gx, d in zip(grads, directions):
            if gx is not None:
                total = total + (gx * d).sum()
        return total

    return gradcheck(vjp_along_directions, *inputs, cotangent, eps=eps, atol=atol, rtol=rtol,
                     seed=seed)
