"""Elementwise math: arithmetic, transcendental functions, activations, comparisons, casts.

Binary ops broadcast like numpy; their VJPs reduce each cotangent back to its input's shape
(``unbroadcast``), which is where most hand-written autodiff engines go wrong.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from ._rules import broadcast_spec, elementwise_cost, require_float
from .registry import Primitive, Spec, register
from .shape import unbroadcast


def _unary(name, forward, vjp, flops=1, doc=""):
    def shape(x: Spec) -> Spec:
        require_float(name, x)
        return x

    return register(Primitive(name, forward=forward, shape=shape, cost=elementwise_cost(flops),
                              vjp=vjp, elementwise=True, doc=doc))


def _binary(name, forward, vjp, flops=1, doc=""):
    return register(Primitive(name, forward=forward, shape=lambda a, b: broadcast_spec(name, a, b),
                              cost=elementwise_cost(flops), vjp=vjp, elementwise=True, doc=doc))


def _grads(pairs):
    """Cotangents for inputs that need them, each reduced to its input's shape."""
    return tuple(unbroadcast(g(), x.shape) if x.requires_grad else None for x, g in pairs)


add = _binary("add", np.add, lambda g, out, a, b: _grads([(a, lambda: g), (b, lambda: g)]),
              doc="a + b")
sub = _binary("sub", np.subtract,
              lambda g, out, a, b: _grads([(a, lambda: g), (b, lambda: neg(g))]), doc="a - b")
mul = _binary("mul", np.multiply,
              lambda g, out, a, b: _grads([(a, lambda: mul(g, b)), (b, lambda: mul(g, a))]),
              doc="a * b")
div = _binary("div", np.divide,
              lambda g, out, a, b: _grads([(a, lambda: div(g, b)),
                                           (b, lambda: neg(div(mul(g, out), b)))]), doc="a / b")
pow = _binary(
    "pow", np.power,
    lambda g, out, a, b: _grads([(a, lambda: mul(g, mul(b, pow(a, sub(b, _one(b)))))),
                                 (b, lambda: mul(g, mul(out, log(a))))]),
    flops=4, doc="a ** b")
maximum = _binary(
    "maximum", np.maximum,
    lambda g, out, a, b: _grads([(a, lambda: mul(g, greater_equal(a, b))),
                                 (b, lambda: mul(g, less(a, b)))]),
    doc="elementwise max of a and b (ties send the gradient to a)")


def _one(x):
    return x.new_constant(np.ones((), dtype=x.dtype))


neg = _unary("neg", np.negative, lambda g, out, x: (neg(g),), doc="-x")
exp = _unary("exp", np.exp, lambda g, out, x: (mul(g, out),), flops=4, doc="e ** x")
log = _unary("log", np.log, lambda g, out, x: (div(g, x),), flops=4, doc="natural logarithm")
sqrt = _unary("sqrt", np.sqrt, lambda g, out, x: (div(g, add(out, out)),), flops=2,
              doc="square root")
tanh = _unary("tanh", np.tanh, lambda g, out, x: (mul(g, sub(_one(out), mul(out, out))),),
              flops=6, doc="hyperbolic tangent")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free form of 1 / (1 + e^-x)


sigmoid = _unary("sigmoid", lambda x: _sigmoid(x).astype(x.dtype, copy=False),
                 lambda g, out, x: (mul(g, mul(out, sub(_one(out), out))),), flops=6,
                 doc="logistic function 1 / (1 + e^-x)")
relu = _unary("relu", lambda x: np.maximum(x, 0, dtype=x.dtype),
              lambda g, out, x: (mul(g, greater(out, _zero(out))),), doc="max(x, 0)")


def _zero(x):
    return x.new_constant(np.zeros((), dtype=x.dtype))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_forward(x: np.ndarray, *, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x**3)
        return (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype, copy=False)
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)


def _gelu_grad_forward(x: np.ndarray, *, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x**3)
        t = np.tanh(inner)
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x**2)
        out = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
    else:
        out = 0.5 * (1.0 + erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return out.astype(x.dtype, copy=False)


def _gelu_shape(x: Spec, *, approximate: str) -> Spec:
    require_float("gelu", x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x


gelu_grad = register(Primitive(
    "gelu_grad", forward=_gelu_grad_forward, shape=_gelu_shape, cost=elementwise_cost(12),
    elementwise=True, doc="derivative of gelu (not itself differentiable)"))
gelu = register(Primitive(
    "gelu", forward=_gelu_forward, shape=_gelu_shape, cost=elementwise_cost(10),
    vjp=lambda g, out, x, *, approximate: (mul(g, gelu_grad(x, approximate=approximate)),),
    elementwise=True, doc="Gaussian error linear unit; approximate='tanh' for the tanh form"))


def _compare(name, forward):
    return register(Primitive(
        name, forward=forward, shape=lambda a, b: Spec(broadcast_spec(name, a, b).shape, np.dtype(bool)),
        cost=elementwise_cost(1), elementwise=True, doc=f"elementwise {name} (not differentiable)"))


greater = _compare("greater", np.greater)
greater_equal = _compare("greater_equal", np.greater_equal)
less = _compare("less", np.less)
less_equal = _compare("less_equal", np.less_equal)
equal = _compare("equal", np.equal)
not_equal = _compare("not_equal", np.not_equal)


def _where_shape(c: Spec, a: Spec, b: Spec) -> Spec:
    if c.dtype != np.dtype(bool):
        raise TypeError(f"where: condition must be bool, got dtype {c.dtype}")
    shape = broadcast_spec("where", c, a, b).shape
    return Spec(shape, np.result_type(a.dtype, b.dtype))


def _where_vjp(g, out, c, a, b):
    ga = mul(g, c)
    return (None, unbroadcast(ga, a.shape) if a.requires_grad else None,
            unbroadcast(sub(g, ga), b.shape) if b.requires_grad else None)


where = register(Primitive(
    "where", forward=np.where, shape=_where_shape, cost=elementwise_cost(1), vjp=_where_vjp,
    elementwise=True, doc="a where condition holds, else b"))


def _cast_shape(x: Spec, *, dtype: np.dtype) -> Spec:
    return Spec(x.shape, np.dtype(dtype))


def _cast_vjp(g, out, x, *, dtype):
    return (cast(g, dtype=x.dtype),) if np.issubdtype(x.dtype, np.floating) else (None,)


cast = register(Primitive(
    "cast", forward=lambda x, *, dtype: x.astype(dtype), shape=_cast_shape,
    cost=elementwise_cost(0), vjp=_cast_vjp, elementwise=True, doc="convert to another dtype"))
