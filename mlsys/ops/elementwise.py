"""Elementwise math: arithmetic, transcendental functions, activations, comparisons, casts.

Binary ops broadcast like numpy and promote dtypes like PyTorch; their VJPs reduce each cotangent
back to its input's shape (``unbroadcast``), which is where most hand-written autodiff engines go
wrong. Gradients at kinks follow PyTorch: ``pow`` at base 0 and ``abs`` at 0 give 0, ties of
``maximum``/``minimum`` split the gradient in half, and masks select with ``where`` (never
``g * mask``, which turns an infinite cotangent into NaN where the mask is 0).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, expit

from ._rules import DEFAULT_FLOAT, broadcast_spec, elementwise_cost, require_float
from .registry import Algebra, Primitive, Spec, register
from .shape import unbroadcast


def _unary(name, forward, vjp, scalar, flops=1, floats_only=True, **flags):
    def shape(x: Spec) -> Spec:
        if floats_only:
            require_float(name, x)
        elif x.dtype == np.dtype(bool) and name != "copy":
            raise TypeError(f"{name}: not defined for bool tensors (convert first, e.g. x.long())")
        return x

    return register(Primitive(name, forward=forward, shape=shape, cost=elementwise_cost(flops),
                              vjp=vjp, arity=1, elementwise=True, scalar=scalar, **flags))


def _binary(name, forward, vjp, scalar, flops=1, **flags):
    return register(Primitive(name, forward=forward, shape=lambda a, b: broadcast_spec(name, a, b),
                              cost=elementwise_cost(flops), vjp=vjp, arity=2, elementwise=True,
                              scalar=scalar, **flags))


def _grads(pairs):
    """Cotangents for inputs that need them, each reduced to its input's shape."""
    return tuple(unbroadcast(g(), x.shape) if x.requires_grad else None for x, g in pairs)


def constant(like, value: float):
    """A 0-d constant of ``like``'s dtype (VJP rules build their constants with it)."""
    return like.new_constant(np.asarray(value, dtype=like.dtype))


def _div_shape(a: Spec, b: Spec) -> Spec:
    spec = broadcast_spec("div", a, b)
    if spec.dtype.kind in "biu":  # true division: integers give the default float type
        return Spec(spec.shape, DEFAULT_FLOAT)
    return spec


# add, sub and mul run in every training step: their rules are written out rather than through
# ``_grads``, whose closures cost more than these rules' arithmetic at small sizes.
def _add_vjp(g, out, a, b):
    return (unbroadcast(g, a.shape) if a.requires_grad else None,
            unbroadcast(g, b.shape) if b.requires_grad else None)


def _sub_vjp(g, out, a, b):
    return (unbroadcast(g, a.shape) if a.requires_grad else None,
            unbroadcast(neg(g), b.shape) if b.requires_grad else None)


def _mul_vjp(g, out, a, b):
    return (unbroadcast(mul(g, b), a.shape) if a.requires_grad else None,
            unbroadcast(mul(g, a), b.shape) if b.requires_grad else None)


add = _binary("add", np.add, _add_vjp, "({0} + {1})", algebra=Algebra(neutral={0: 0, 1: 0}),
              doc="a + b")
sub = _binary("sub", np.subtract, _sub_vjp, "({0} - {1})", algebra=Algebra(neutral={1: 0}),
              doc="a - b")
mul = _binary("mul", np.multiply, _mul_vjp, "({0} * {1})", algebra=Algebra(neutral={0: 1, 1: 1}),
              doc="a * b")
div = register(Primitive(
    "div", forward=np.true_divide, shape=_div_shape, cost=elementwise_cost(1),
    vjp=lambda g, out, a, b: _grads([(a, lambda: div(g, b)),
                                     (b, lambda: neg(div(mul(g, out), b)))]),
    arity=2, elementwise=True, scalar="({0} / {1})", algebra=Algebra(neutral={1: 1}),
    doc="a / b (true division: integer operands give the default float type)"))


def _pow_vjp(g, out, a, b):
    """PyTorch's gradients at base 0: d/da is 0 where b == 0, d/db is 0 where a == 0 and b >= 0.
    The values masked away are computed from safe stand-ins (an exponent of 1, a log of 1), so no
    inf or NaN appears even when these gradients are differentiated again."""
    zero, one = constant(g, 0), constant(g, 1)

    def grad_base():
        safe_b = where(equal(b, zero), one, b)
        return mul(g, mul(b, pow(a, sub(safe_b, one))))

    def grad_exponent():
        at_zero = mul(equal(a, zero), greater_equal(b, zero))
        return where(at_zero, zero, mul(g, mul(out, log(where(at_zero, one, a)))))

    return _grads([(a, grad_base), (b, grad_exponent)])


pow = _binary("pow", np.power, _pow_vjp, "({0} ** {1})", flops=4,
              algebra=Algebra(neutral={1: 1}), doc="a ** b")


def _extremum_vjp(loses):
    """``maximum``/``minimum``: each operand gets the gradient where it wins, half at ties."""

    def vjp(g, out, a, b):
        zero, half = constant(g, 0), mul(g, constant(g, 0.5))

        def share(x, y):
            return lambda: where(loses(x, y), zero, where(equal(x, y), half, g))

        return _grads([(a, share(a, b)), (b, share(b, a))])

    return vjp


# NaN propagates (as numpy and PyTorch): a NaN on either side is the result.
maximum = _binary("maximum", np.maximum, _extremum_vjp(lambda x, y: less(x, y)),
                  "({0} if ({0} >= {1} or {0} != {0}) else {1})",
                  doc="elementwise max of a and b (NaN wins; ties split the gradient)")
minimum = _binary("minimum", np.minimum, _extremum_vjp(lambda x, y: greater(x, y)),
                  "({0} if ({0} <= {1} or {0} != {0}) else {1})",
                  doc="elementwise min of a and b (NaN wins; ties split the gradient)")

neg = _unary("neg", np.negative, lambda g, out, x: (neg(g),), "(-{0})", floats_only=False,
             algebra=Algebra(involution=True), doc="-x")
exp = _unary("exp", np.exp, lambda g, out, x: (mul(g, out),), "exp({0})", flops=4, doc="e ** x")
log = _unary("log", np.log, lambda g, out, x: (div(g, x),), "log({0})", flops=4,
             doc="natural logarithm")
sqrt = _unary("sqrt", np.sqrt, lambda g, out, x: (div(g, add(out, out)),), "sqrt({0})", flops=2,
              doc="square root")
tanh = _unary("tanh", np.tanh,
              lambda g, out, x: (mul(g, sub(constant(out, 1), mul(out, out))),), "tanh({0})",
              flops=6, doc="hyperbolic tangent")
sigmoid = _unary("sigmoid", expit, lambda g, out, x: (mul(g, mul(out, sub(constant(out, 1), out))),),
                 "(F(1.0) / (F(1.0) + exp(-{0})))", flops=6, multipass=True,
                 doc="logistic function 1 / (1 + e^-x)")
relu = _unary("relu", lambda x: np.maximum(x, 0, dtype=x.dtype),
              lambda g, out, x: (relu_grad(g, out),),
              "({0} if ({0} > F(0.0) or {0} != {0}) else F(0.0))", doc="max(x, 0)")


def _relu_grad_shape(g: Spec, out: Spec) -> Spec:
    require_float("relu_grad", g)
    return broadcast_spec("relu_grad", g, out)


relu_grad = register(Primitive(
    "relu_grad", forward=lambda g, out: _keep(g, ~(out <= 0)), shape=_relu_grad_shape,
    cost=elementwise_cost(1), vjp=lambda G, r, g, out: (relu_grad(G, out), None), arity=2,
    elementwise=True, scalar="(F(0.0) if {1} <= F(0.0) else {0})", multipass=True,
    doc="g where relu's output is positive (or NaN), else 0: PyTorch's threshold_backward"))
sign = _unary("sign", np.sign, lambda g, out, x: (None,),
              "(F(1.0) if {0} > 0 else (F(-1.0) if {0} < 0 else {0}))", floats_only=False,
              doc="-1, 0 or 1 by the sign of x (NaN stays NaN); its gradient is zero")
abs = _unary("abs", np.abs, lambda g, out, x: (mul(g, sign(x)),), "abs({0})", floats_only=False,
             doc="|x|; its gradient at 0 is 0, as in PyTorch")
copy = _unary("copy", np.copy, lambda g, out, x: (g,), "{0}", flops=0, floats_only=False,
              algebra=Algebra(noop=lambda x: True), doc="a copy of x (Tensor.clone)")

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_A = 0.044715


def _gelu_forward(x: np.ndarray, *, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + _GELU_A * x**3)
        return (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype, copy=False)
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)


def _gelu_grad_forward(x: np.ndarray, *, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + _GELU_A * x**3)
        t = np.tanh(inner)
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3 * _GELU_A * x**2)
        out = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
    else:
        out = 0.5 * (1.0 + erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return out.astype(x.dtype, copy=False)


def _gelu_second(x, approximate: str):
    """gelu''(x), written with primitives so that it can be differentiated again."""
    c = lambda v: constant(x, v)  # noqa: E731
    x2 = mul(x, x)
    if approximate == "tanh":  # with u = k(x + a x^3), t = tanh(u): (1 - t^2)(u' - x t u'^2 + x u''/2)
        t = tanh(mul(c(_SQRT_2_OVER_PI), add(x, mul(c(_GELU_A), mul(x2, x)))))
        du = mul(c(_SQRT_2_OVER_PI), add(c(1.0), mul(c(3 * _GELU_A), x2)))
        half_d2u = mul(c(3 * _SQRT_2_OVER_PI * _GELU_A), x)
        inner = add(sub(du, mul(mul(x, t), mul(du, du))), mul(x, half_d2u))
        return mul(sub(c(1.0), mul(t, t)), inner)
    phi = mul(exp(mul(x2, c(-0.5))), c(_INV_SQRT_2PI))  # the normal density
    return mul(phi, sub(c(2.0), x2))


def _gelu_shape(x: Spec, *, approximate: str) -> Spec:
    require_float("gelu", x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x


def _gelu_template(args: list[str], params) -> str:
    x = args[0]
    if params["approximate"] == "tanh":
        inner = f"F({_SQRT_2_OVER_PI!r}) * ({x} + F({_GELU_A!r}) * {x} * {x} * {x})"
        return f"(F(0.5) * {x} * (F(1.0) + tanh({inner})))"
    return f"(F(0.5) * {x} * (F(1.0) + erf({x} * F({1 / math.sqrt(2.0)!r}))))"


def _gelu_grad_template(args: list[str], params) -> str:
    x = args[0]
    if params["approximate"] == "tanh":
        t = f"tanh(F({_SQRT_2_OVER_PI!r}) * ({x} + F({_GELU_A!r}) * {x} * {x} * {x}))"
        dt = f"(F({_SQRT_2_OVER_PI!r}) * (F(1.0) + F({3 * _GELU_A!r}) * {x} * {x}))"
        return f"(F(0.5) * (F(1.0) + {t}) + F(0.5) * {x} * (F(1.0) - {t} * {t}) * {dt})"
    return (f"(F(0.5) * (F(1.0) + erf({x} * F({1 / math.sqrt(2.0)!r}))) + {x} * "
            f"exp(F(-0.5) * {x} * {x}) * F({_INV_SQRT_2PI!r}))")


gelu_grad = register(Primitive(
    "gelu_grad", forward=_gelu_grad_forward, shape=_gelu_shape, cost=elementwise_cost(12),
    vjp=lambda g, out, x, *, approximate: (mul(g, _gelu_second(x, approximate)),),
    arity=1, elementwise=True, scalar=_gelu_grad_template, multipass=True,
    doc="derivative of gelu"))
gelu = register(Primitive(
    "gelu", forward=_gelu_forward, shape=_gelu_shape, cost=elementwise_cost(10),
    vjp=lambda g, out, x, *, approximate: (mul(g, gelu_grad(x, approximate=approximate)),),
    arity=1, elementwise=True, scalar=_gelu_template, multipass=True,
    doc="Gaussian error linear unit; approximate='tanh' for the tanh form"))


def _compare(name, forward, op):
    return register(Primitive(
        name, forward=forward, shape=lambda a, b: Spec(broadcast_spec(name, a, b).shape, np.dtype(bool)),
        cost=elementwise_cost(1), arity=2, elementwise=True, scalar=f"({{0}} {op} {{1}})",
        doc=f"elementwise a {op} b (not differentiable)"))


greater = _compare("greater", np.greater, ">")
greater_equal = _compare("greater_equal", np.greater_equal, ">=")
less = _compare("less", np.less, "<")
less_equal = _compare("less_equal", np.less_equal, "<=")
equal = _compare("equal", np.equal, "==")
not_equal = _compare("not_equal", np.not_equal, "!=")


def _where_shape(c: Spec, a: Spec, b: Spec) -> Spec:
    if c.dtype != np.dtype(bool):
        raise TypeError(f"where: condition must be bool, got dtype {c.dtype}")
    shape = broadcast_spec("where", c, a, b).shape
    return Spec(shape, broadcast_spec("where", a, b).dtype)


def _keep(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``x`` where ``keep`` holds, else +0.0: a multiply by the mask, four times faster than
    ``np.where`` (the ``+ 0.0`` turns -0.0 into np.where's +0.0). An inf or NaN in ``x`` could
    make a masked 0 * inf NaN, so a NaN anywhere (the one cheap test: the minimum is NaN exactly
    then, and unlike a sum of squares it cannot overflow) sends it to ``np.where`` after all."""
    out = np.multiply(x, keep)
    out += 0.0
    flat = out.reshape(-1)
    nan = flat.size and np.isnan(np.minimum.reduce(flat))
    return np.where(keep, x, np.zeros((), x.dtype)) if nan else out


def _where_forward(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.where``, faster when one side is a scalar 0 (as in most VJP rules)."""
    for zero, other, keep in ((a, b, False), (b, a, True)):
        if (zero.ndim == 0 and other.shape == c.shape and other.dtype == zero.dtype
                and other.dtype.kind == "f" and zero == 0):
            return _keep(other, c if keep else ~c)
    return np.where(c, a, b)


def _where_vjp(g, out, c, a, b):
    zero = constant(g, 0)
    return (None, unbroadcast(where(c, g, zero), a.shape) if a.requires_grad else None,
            unbroadcast(where(c, zero, g), b.shape) if b.requires_grad else None)


where = register(Primitive(
    "where", forward=_where_forward, shape=_where_shape, cost=elementwise_cost(1), vjp=_where_vjp,
    arity=3, elementwise=True, scalar="({1} if {0} else {2})",
    doc="a where condition holds, else b (the unselected side's gradient is exactly 0)"))


def _cast_shape(x: Spec, *, dtype: np.dtype) -> Spec:
    return Spec(x.shape, np.dtype(dtype))


def _cast_vjp(g, out, x, *, dtype):
    return (cast(g, dtype=x.dtype),) if np.issubdtype(x.dtype, np.floating) else (None,)


def _cast_template(args: list[str], params) -> str:
    dtype = np.dtype(params["dtype"])
    if dtype.kind == "b":
        return f"({args[0]} != 0)"
    return f"np.{dtype.name}({args[0]} * 1)"  # `* 1` promotes a bool, which np.float32() refuses


cast = register(Primitive(
    "cast", forward=lambda x, *, dtype: x.astype(dtype), shape=_cast_shape,
    cost=elementwise_cost(0), vjp=_cast_vjp, arity=1, elementwise=True, scalar=_cast_template,
    algebra=Algebra(noop=lambda x, *, dtype: np.dtype(dtype) == x.dtype),
    doc="convert to another dtype"))
