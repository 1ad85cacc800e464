"""mlsys: a small, real machine-learning engine for learning how ML systems work.

``import mlsys`` gives a PyTorch-shaped API: ``mlsys.tensor``, ``Tensor.backward()``,
``mlsys.nn``, ``mlsys.optim`` and ``mlsys.data``. Every operation is a primitive in
:mod:`mlsys.ops`, defined once and read by the tape, the compiler, the kernels and the simulators.
"""

from . import autograd, data, models, nn, ops, optim, testing, training
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import arange, full, ones, ones_like, rand, randn, zeros, zeros_like
from .functions import (
    abs,
    cat,
    clamp,
    exp,
    log,
    maximum,
    minimum,
    sigmoid,
    sqrt,
    stack,
    tanh,
    where,
)
from .graph import compile, trace
from .random import manual_seed
from .tensor import Tensor, matmul, tensor

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "ops", "nn", "optim", "data", "models", "testing", "training", "autograd",
    "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
    "zeros", "ones", "zeros_like", "ones_like", "full", "arange", "rand", "randn", "manual_seed",
    "matmul", "exp", "log", "sqrt", "tanh", "sigmoid", "maximum", "minimum", "abs", "clamp", "where",
    "cat", "stack",
    "trace", "compile",
]
