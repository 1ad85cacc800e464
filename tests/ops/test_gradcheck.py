"""Every differentiable primitive against finite differences, first and second order.

``CASES`` applies each primitive (directly, or through the API that reaches it) to small float64
inputs; every case is checked with ``gradcheck`` (first derivatives) and ``gradgradcheck`` (the
VJP differentiated again, with respect to the inputs and the cotangent). A primitive with a VJP
that no case reaches fails ``test_every_differentiable_primitive_has_a_case``, which watches the
cases run. Hypothesis-drawn shapes (broadcasting included) check the common ops further.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlsys
from mlsys.nn import functional as F
from mlsys.ops import PRIMITIVES
from mlsys.ops import elementwise as E
from mlsys.ops import nn as NN
from mlsys.ops import shape as S
from mlsys.tensor import add_observer, remove_observer
from mlsys.testing import GradcheckError, gradcheck, gradgradcheck

dims = st.integers(1, 4)
shapes = st.lists(dims, min_size=0, max_size=3).map(tuple)


def t(rng, shape, low=-2.0, high=2.0):
    return mlsys.Tensor(np.asarray(rng.uniform(low, high, size=shape), np.float64),
                        requires_grad=True)


def away_from_zero(rng, shape):
    values = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return mlsys.Tensor(np.asarray(values, np.float64), requires_grad=True)


def positive(rng, shape):
    return t(rng, shape, 0.5, 2.0)


def distinct(rng, shape, offset=0.0):
    """Values at least 0.1 apart: no ties, where extrema and sorting have no derivative."""
    values = (rng.permutation(int(np.prod(shape))).reshape(shape) - 3.0) * 0.1 + offset
    return mlsys.Tensor(values, requires_grad=True)


def ints(values):
    return mlsys.tensor(np.array(values))


MASK = mlsys.tensor(np.array([[True, False, True], [False, False, True]]))
CONV = dict(input_size=(4, 4), kernel_size=(2, 2), stride=(1, 1), padding=(1, 1))

# name -> (function of the inputs, makers of the inputs from a generator); float64 throughout
CASES = {
    "add": (lambda a, b: a + b, [lambda r: t(r, (2, 3)), lambda r: t(r, (3,))]),
    "sub": (lambda a, b: a - b, [lambda r: t(r, (2, 3)), lambda r: t(r, (2, 1))]),
    "mul": (lambda a, b: a * b, [lambda r: t(r, (2, 3)), lambda r: t(r, (3,))]),
    "div": (lambda a, b: a / b, [lambda r: t(r, (2, 3)), lambda r: away_from_zero(r, (3,))]),
    "pow": (lambda a, b: a ** b, [lambda r: positive(r, (2, 3)), lambda r: t(r, (3,))]),
    "pow_scalar": (lambda a: a ** 3, [lambda r: t(r, (4,))]),
    "maximum": (mlsys.maximum, [lambda r: distinct(r, (2, 3)), lambda r: distinct(r, (3,), 0.05)]),
    "minimum": (mlsys.minimum, [lambda r: distinct(r, (2, 3)), lambda r: distinct(r, (3,), 0.05)]),
    "neg": (lambda x: -x, [lambda r: t(r, (2, 3))]),
    "exp": (mlsys.exp, [lambda r: t(r, (2, 3))]),
    "log": (mlsys.log, [lambda r: positive(r, (2, 3))]),
    "sqrt": (mlsys.sqrt, [lambda r: positive(r, (2, 3))]),
    "tanh": (mlsys.tanh, [lambda r: t(r, (2, 3))]),
    "sigmoid": (mlsys.sigmoid, [lambda r: t(r, (2, 3))]),
    "relu": (F.relu, [lambda r: away_from_zero(r, (2, 3))]),
    "abs": (mlsys.abs, [lambda r: away_from_zero(r, (2, 3))]),
    "sign": (lambda x: x.sign() * x, [lambda r: away_from_zero(r, (2, 3))]),
    "clone": (lambda x: x.clone() * 2, [lambda r: t(r, (2, 3))]),
    "cast": (lambda x: x.to(np.float32).to(np.float64), [lambda r: t(r, (3,))]),
    "gelu": (F.gelu, [lambda r: t(r, (2, 3))]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [lambda r: t(r, (2, 3))]),
    "gelu_grad": (lambda x: E.gelu_grad(x, approximate="none"), [lambda r: t(r, (5,))]),
    "gelu_grad_tanh": (lambda x: E.gelu_grad(x, approximate="tanh"), [lambda r: t(r, (5,))]),
    "silu": (F.silu, [lambda r: t(r, (2, 3))]),
    "where": (lambda a, b: mlsys.where(MASK, a, b), [lambda r: t(r, (2, 3)), lambda r: t(r, (3,))]),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), [lambda r: distinct(r, (2, 3))]),
    "masked_fill": (lambda x: x.masked_fill(MASK, 1.5), [lambda r: t(r, (2, 3))]),
    "sum": (lambda x: x.sum((0, 2), keepdim=True), [lambda r: t(r, (2, 3, 2))]),
    "mean": (lambda x: x.mean(1), [lambda r: t(r, (2, 3))]),
    "amax": (lambda x: x.amax(0), [lambda r: distinct(r, (3, 2))]),
    "amin": (lambda x: x.amin(), [lambda r: distinct(r, (3, 2))]),
    "prod": (lambda x: x.prod(1), [lambda r: away_from_zero(r, (2, 3))]),
    "prod_at_a_zero": (lambda x: (x * mlsys.tensor([1.0, 0.0, 1.0])).prod(),
                       [lambda r: away_from_zero(r, (3,))]),
    "cumsum": (lambda x: x.cumsum(1), [lambda r: t(r, (2, 3))]),
    "max_dim": (lambda x: x.max(1).values, [lambda r: distinct(r, (2, 3))]),
    "min_dim": (lambda x: x.min(0, keepdim=True).values, [lambda r: distinct(r, (2, 3))]),
    "sort": (lambda x: x.sort(1, descending=True).values * mlsys.arange(3), [lambda r: distinct(r, (2, 3))]),
    "topk": (lambda x: x.topk(2).values, [lambda r: distinct(r, (2, 3))]),
    "var_std": (lambda x: x.var(1) + x.std(0), [lambda r: t(r, (3, 3))]),
    "matmul": (mlsys.matmul, [lambda r: t(r, (2, 2, 3)), lambda r: t(r, (3, 2))]),
    "reshape_permute_broadcast": (lambda x: x.reshape(3, 2).permute(1, 0).expand(2, 2, 3) * 1.5,
                                  [lambda r: t(r, (2, 3))]),
    "sum_to": (lambda x: S.sum_to(x, shape=(3, 1)), [lambda r: t(r, (2, 3, 2))]),
    "getitem": (lambda x: x[np.array([0, 1, 1]), 1:], [lambda r: t(r, (2, 3))]),
    "scatter_add": (lambda g: S.scatter_add(g, index=S.Index((np.array([0, 2, 0]),)), shape=(4, 2)),
                    [lambda r: t(r, (3, 2))]),
    "take": (lambda x: S.take(x, ints([[0, 2], [2, 1]]), axis=1), [lambda r: t(r, (2, 3))]),
    "put_add": (lambda g: S.put_add(g, ints([0, 2, 0]), axis=0, size=4), [lambda r: t(r, (3, 2))]),
    "gather": (lambda x: x.gather(1, ints([[0, 0], [2, 1]])), [lambda r: t(r, (2, 3))]),
    "put_along_add": (lambda g: S.put_along_add(g, ints([[0, 0], [2, 1]]), axis=1, shape=(2, 3)),
                      [lambda r: t(r, (2, 2))]),
    "concatenate": (lambda a, b: mlsys.cat([a, b * 2], dim=1), [lambda r: t(r, (2, 3)),
                                                               lambda r: t(r, (2, 1))]),
    "split_chunk": (lambda x: x.split([1, 2], 1)[1] * x.chunk(3, 1)[0], [lambda r: t(r, (2, 3))]),
    "pad": (lambda x: F.pad(x, (1, -1, 0, 2), value=0.5), [lambda r: t(r, (2, 3))]),
    "setitem": (lambda x, v: _set(x, v), [lambda r: t(r, (2, 3)), lambda r: t(r, (3,))]),
    "softmax": (lambda x: x.softmax(0), [lambda r: t(r, (2, 3))]),
    "log_softmax": (lambda x: x.log_softmax(1), [lambda r: t(r, (2, 3))]),
    "nll_loss": (lambda z: F.nll_loss(z.log_softmax(1), ints([2, 0, 1])), [lambda r: t(r, (3, 4))]),
    "nll_loss_none": (lambda z: F.nll_loss(z, ints([[1, 0], [2, 2]]), reduction="none"),
                      [lambda r: t(r, (2, 3, 2))]),
    "cross_entropy_smoothed": (lambda z: F.cross_entropy(z, ints([0, 3, 1]), label_smoothing=0.1),
                               [lambda r: t(r, (3, 4))]),
    "cross_entropy_probabilities": (
        lambda z, p: F.cross_entropy(z, p.softmax(1), reduction="sum"),
        [lambda r: t(r, (2, 3, 2)), lambda r: t(r, (2, 3, 2))]),
    "binary_cross_entropy": (F.binary_cross_entropy, [lambda r: t(r, (2, 3), 0.1, 0.9),
                                                      lambda r: t(r, (2, 3), 0.0, 1.0)]),
    "conv2d": (lambda x, w: F.conv2d(x, w, stride=1, padding=1), [lambda r: t(r, (1, 2, 3, 3)),
                                                                 lambda r: t(r, (2, 2, 2, 2))]),
    "fold2d": (lambda c: NN.fold2d(c, **CONV), [lambda r: t(r, (1, 4, 25))]),
    "layer_norm": (lambda x, w: F.layer_norm(x, 3, w), [lambda r: t(r, (2, 3)), lambda r: t(r, (3,))]),
    "batch_norm": (lambda x: F.batch_norm(x, None, None, training=True), [lambda r: t(r, (3, 2, 2))]),
}


def _set(x, v):
    y = x * 1.0
    y[1] = v
    return y


def build(name: str, seed: int = 0) -> tuple:
    fn, makers = CASES[name]
    rng = np.random.default_rng(seed)
    return fn, [make(rng) for make in makers]


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_order(name: str) -> None:
    fn, inputs = build(name)
    coarse = name == "cast"  # a float32 round trip: finite differences are coarse
    assert gradcheck(fn, *inputs, **({"eps": 1e-2, "atol": 1e-3, "rtol": 1e-3} if coarse else {}))


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_order(name: str) -> None:
    fn, inputs = build(name)
    coarse = name == "cast"
    assert gradgradcheck(fn, *inputs, **({"eps": 1e-2, "atol": 1e-3, "rtol": 1e-3} if coarse else {}))


class _Seen:
    def __init__(self) -> None:
        self.names: set[str] = set()

    def record(self, prim, inputs, params, out) -> None:
        self.names.add(prim.name)


def test_every_differentiable_primitive_has_a_case() -> None:
    seen = _Seen()
    add_observer(seen)
    try:
        for name in CASES:
            fn, inputs = build(name)
            out = fn(*inputs)
            out.backward(mlsys.Tensor(np.ones(out.shape)), create_graph=True)
    finally:
        remove_observer(seen)
    differentiable = {name for name, p in PRIMITIVES.items() if p.vjp is not None}
    assert differentiable - seen.names == set(), "add a case for the new primitive"


def test_gradgradcheck_catches_a_wrong_second_derivative() -> None:
    wrong = E.gelu_grad.vjp
    try:  # a VJP of gelu_grad that is off by a factor: first order still passes
        E.gelu_grad.vjp = lambda g, out, x, *, approximate: (
            wrong(g, out, x, approximate=approximate)[0] * 1.5,)
        fn, inputs = build("gelu")
        assert gradcheck(fn, *inputs)
        with pytest.raises(GradcheckError):
            gradgradcheck(fn, *inputs)
    finally:
        E.gelu_grad.vjp = wrong


# -- random shapes (hypothesis) -------------------------------------------------------------------

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together: the second drops leading dims and sets some to 1."""
    a = draw(st.lists(dims, min_size=1, max_size=3).map(tuple))
    keep = draw(st.integers(0, len(a)))
    b = tuple(1 if draw(st.booleans()) else n for n in a[len(a) - keep:])
    return (a, b) if draw(st.booleans()) else (b, a)


def check(draw, make):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    fn, inputs = make(rng)
    assert gradcheck(fn, *inputs)


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "maximum": mlsys.maximum, "minimum": mlsys.minimum,
    "where": lambda a, b: mlsys.where(a > 0, a, b),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(data=st.data(), pair=broadcast_pair())
def test_binary_broadcasting(name, data, pair):
    def make(rng):
        a = t(rng, pair[0])
        b = away_from_zero(rng, pair[1]) if name == "div" else t(rng, pair[1])
        return BINARY[name], [a, b]

    check(data.draw, make)


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin", "prod"])
@SETTINGS
@given(data=st.data(), shape=st.lists(dims, min_size=1, max_size=3).map(tuple),
       keepdim=st.booleans())
def test_reductions(reduce, data, shape, keepdim):
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))

    def make(rng):
        x = distinct(rng, shape) if reduce in ("amax", "amin") else away_from_zero(rng, shape)
        return (lambda v: getattr(v, reduce)(axis, keepdim)), [x]

    check(data.draw, make)


@SETTINGS
@given(data=st.data(), m=dims, k=dims, n=dims, batch=st.lists(dims, max_size=2).map(tuple),
       broadcast_b=st.booleans())
def test_matmul_batched(data, m, k, n, batch, broadcast_b):
    b_shape = (k, n) if broadcast_b else batch + (k, n)
    check(data.draw, lambda rng: (mlsys.matmul, [t(rng, batch + (m, k)), t(rng, b_shape)]))


@pytest.mark.parametrize("shape_a,shape_b", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,))])
def test_matmul_vectors(shape_a, shape_b, rng):
    assert gradcheck(mlsys.matmul, t(rng, shape_a), t(rng, shape_b))


@SETTINGS
@given(data=st.data(), shape=st.lists(dims, min_size=1, max_size=4).map(tuple))
def test_reshape_permute_broadcast(data, shape):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    target = (1,) * data.draw(st.integers(0, 2)) + shape

    def make(rng):
        def fn(x):
            return x.reshape(-1).reshape(shape).permute(perm).permute(
                tuple(np.argsort(perm))).expand(target) * 1.5
        return fn, [t(rng, shape)]

    check(data.draw, make)


INDEXES = [
    (slice(1, 3),), (0, slice(None, None, -1)), (Ellipsis, 1), (None, slice(0, 2)),
    (np.array([0, 2, 2]),), (np.array([[0, 1], [1, 0]]), slice(1, None)),
    (np.array([True, False, True]),),
]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_getitem(index, rng):
    assert gradcheck(lambda x: x[index], t(rng, (3, 4)))


@pytest.mark.parametrize("fn", ["softmax", "log_softmax", "cumsum"])
@SETTINGS
@given(data=st.data(), shape=st.lists(dims, min_size=1, max_size=3).map(tuple))
def test_along_one_dim(fn, data, shape):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(data.draw, lambda rng: ((lambda x: getattr(x, fn)(dim)), [t(rng, shape)]))


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((2, 1), (0, 1))])
def test_conv2d(stride, padding, rng):
    x, w, b = t(rng, (2, 2, 5, 4)), t(rng, (3, 2, 3, 2)), t(rng, (3,))
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), x, w, b)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling(pool, rng):
    x = mlsys.Tensor(rng.permutation(2 * 3 * 4 * 4).reshape(2, 3, 4, 4) * 0.1, requires_grad=True)
    fn = F.max_pool2d if pool == "max" else F.avg_pool2d
    assert gradcheck(lambda v: fn(v, 2), x)
    assert gradcheck(lambda v: fn(v, 3, stride=1, padding=1), x)


def test_embedding(rng):
    assert gradcheck(lambda w: F.embedding(ints([[1, 0], [1, 3]]), w), t(rng, (4, 3)))


def test_dropout_gradient_uses_the_same_mask(rng):
    x = t(rng, (50,))
    mlsys.manual_seed(3)
    out = F.dropout(x, 0.4)
    out.backward(mlsys.Tensor(np.ones(50)))
    kept = out.data != 0
    np.testing.assert_allclose(x.grad.data[kept], 1 / 0.6)
    np.testing.assert_allclose(x.grad.data[~kept], 0.0)


def test_attention_block(rng):
    mlsys.manual_seed(0)
    block = mlsys.nn.TransformerBlock(4, 2)
    for p in block.parameters():
        p.data = p.data.astype(np.float64)
    assert gradcheck(block, t(rng, (2, 3, 4)), atol=1e-4)


def test_cross_entropy_matches_its_definition(rng):
    logits, target = rng.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    loss = F.cross_entropy(mlsys.tensor(logits), mlsys.tensor(target), label_smoothing=0.2)
    expected = (0.8 * -logp[np.arange(5), target] - 0.2 * logp.mean(1)).mean()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


def test_third_derivative_through_create_graph():
    x = mlsys.Tensor(np.array([0.3, -1.2]), requires_grad=True)
    (g,) = mlsys.autograd.grad((x * x * x * x).sum(), x, create_graph=True)
    (h,) = mlsys.autograd.grad(g.sum(), x, create_graph=True)
    (k,) = mlsys.autograd.grad(h.sum(), x)
    np.testing.assert_allclose(k.data, 24 * x.data)
