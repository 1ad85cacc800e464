"""Elementwise primitives as Numba ufuncs (``@vectorize``): compiled loops with numpy's broadcasting.

One scalar function per primitive, compiled for float32 and float64; an op on other dtypes, or
on mixed dtypes, is left to the numpy reference. Fused elementwise kernels (several ops in one
loop) are generated from traced graphs by :mod:`mlsys.graph.codegen`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from numba import vectorize

__all__ = ["UFUNCS"]

_UNARY = ["float32(float32)", "float64(float64)"]
_BINARY = ["float32(float32, float32)", "float64(float64, float64)"]


def _unary(fn: Callable) -> Callable:
    return vectorize(_UNARY, cache=True)(fn)


def _binary(fn: Callable) -> Callable:
    return vectorize(_BINARY, cache=True)(fn)


def _add(a, b):
    return a + b


def _sub(a, b):
    return a - b


def _mul(a, b):
    return a * b


def _div(a, b):
    return a / b


def _maximum(a, b):
    return max(a, b)


def _neg(x):
    return -x


def _exp(x):
    return math.exp(x)


def _log(x):
    return math.log(x)


def _tanh(x):
    return math.tanh(x)


def _relu(x):
    return max(x, 0)


def _sigmoid(x):
    return 0.5 * (math.tanh(0.5 * x) + 1)


# primitive name -> ufunc; arity follows the primitive
UFUNCS: dict[str, Callable] = {
    "add": _binary(_add), "sub": _binary(_sub), "mul": _binary(_mul), "div": _binary(_div),
    "maximum": _binary(_maximum), "neg": _unary(_neg), "exp": _unary(_exp),
    "log": _unary(_log), "tanh": _unary(_tanh), "relu": _unary(_relu),
    "sigmoid": _unary(_sigmoid),
}
