"""Every differentiable primitive against finite differences, over random shapes (hypothesis).

Each case builds float64 inputs from hypothesis-drawn shapes (broadcasting included) and checks the
primitive's VJP with ``mlsys.testing.gradcheck``. A primitive registered without a case here fails
``test_every_differentiable_primitive_has_a_case``.
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
from mlsys.testing import gradcheck

dims = st.integers(1, 4)
shapes = st.lists(dims, min_size=0, max_size=3).map(tuple)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together: the second drops leading dims and sets some to 1."""
    a = draw(st.lists(dims, min_size=1, max_size=3).map(tuple))
    keep = draw(st.integers(0, len(a)))
    b = tuple(1 if draw(st.booleans()) else n for n in a[len(a) - keep:])
    return (a, b) if draw(st.booleans()) else (b, a)


def t(rng, shape, low=-2.0, high=2.0):
    return mlsys.Tensor(np.asarray(rng.uniform(low, high, size=shape), np.float64),
                        requires_grad=True)


def away_from_zero(rng, shape):
    values = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return mlsys.Tensor(np.asarray(values, np.float64), requires_grad=True)


SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))


def check(draw, build):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    fn, inputs = build(rng)
    assert gradcheck(fn, *inputs)


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "maximum": mlsys.maximum,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(data=st.data(), pair=broadcast_pair())
def test_binary_broadcasting(name, data, pair):
    def build(rng):
        a = t(rng, pair[0])
        b = away_from_zero(rng, pair[1]) if name == "div" else t(rng, pair[1])
        return BINARY[name], [a, b]

    check(data.draw, build)


UNARY = {
    "neg": (lambda x: -x, t), "exp": (mlsys.exp, t),
    "log": (mlsys.log, lambda rng, s: t(rng, s, 0.5, 3.0)),
    "sqrt": (mlsys.sqrt, lambda rng, s: t(rng, s, 0.5, 3.0)),
    "tanh": (mlsys.tanh, t), "sigmoid": (mlsys.sigmoid, t),
    "relu": (F.relu, away_from_zero),
    "gelu": (F.gelu, t), "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), t),
    "cast": (lambda x: x.to(np.float32).to(np.float64) * 1.0, t),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(data=st.data(), shape=shapes)
def test_unary(name, data, shape):
    fn, make = UNARY[name]
    if name == "cast":  # float32 round trip: compare with a coarse tolerance
        x = t(np.random.default_rng(0), shape)
        assert gradcheck(fn, x, eps=1e-2, atol=1e-3, rtol=1e-3)
        return
    check(data.draw, lambda rng: (fn, [make(rng, shape)]))


@SETTINGS
@given(data=st.data(), pair=broadcast_pair())
def test_pow_both_operands(data, pair):
    check(data.draw, lambda rng: (lambda a, b: a**b, [t(rng, pair[0], 0.5, 2.0), t(rng, pair[1])]))


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@SETTINGS
@given(data=st.data(), shape=st.lists(dims, min_size=1, max_size=3).map(tuple),
       keepdim=st.booleans())
def test_reductions(reduce, data, shape, keepdim):
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))

    def build(rng):
        x = t(rng, shape)
        if reduce == "max":  # distinct values: finite differences are undefined at ties
            x = mlsys.Tensor(rng.permutation(x.numel()).reshape(shape) * 0.1, requires_grad=True)
        return (lambda v: getattr(v, reduce)(axis, keepdim)), [x]

    check(data.draw, build)


def test_max_splits_gradient_between_ties():
    x = mlsys.tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 0.5])


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

    def build(rng):
        def fn(x):
            return x.reshape(-1).reshape(shape).permute(perm).permute(
                tuple(np.argsort(perm))).expand(target) * 1.5
        return fn, [t(rng, shape)]

    check(data.draw, build)


def test_sum_to_directly(rng):
    assert gradcheck(lambda x: S.sum_to(x, shape=(3, 1)), t(rng, (2, 3, 4)))


INDEXES = [
    (slice(1, 3),), (0, slice(None, None, -1)), (Ellipsis, 1), (None, slice(0, 2)),
    (np.array([0, 2, 2]),), (np.array([[0, 1], [1, 0]]), slice(1, None)),
    (np.array([True, False, True]),),
]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_getitem(index, rng):
    assert gradcheck(lambda x: x[index], t(rng, (3, 4)))


def test_scatter_add_directly(rng):
    index = S.Index((np.array([0, 2, 0]),))
    assert gradcheck(lambda g: S.scatter_add(g, index=index, shape=(4, 2)), t(rng, (3, 2)))


@pytest.mark.parametrize("axis", [0, 1])
def test_take_and_put_add(axis, rng):
    idx = mlsys.tensor(np.array([[0, 2], [2, 1]]))
    assert gradcheck(lambda x: S.take(x, idx, axis=axis), t(rng, (3, 3, 2)))
    size = 3
    g_shape = (2, 2, 3, 2) if axis == 0 else (3, 2, 2, 2)
    assert gradcheck(lambda g: S.put_add(g, idx, axis=axis, size=size), t(rng, g_shape))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack(dim, rng):
    a, b = t(rng, (2, 3)), t(rng, (2, 3))
    assert gradcheck(lambda x, y: mlsys.cat([x, y * 2], dim=dim), a, b)
    assert gradcheck(lambda x, y: mlsys.stack([x, y], dim=dim), a, b)


@SETTINGS
@given(data=st.data(), pair=broadcast_pair())
def test_where(data, pair):
    def build(rng):
        a, b = t(rng, pair[0]), t(rng, pair[1])
        cond = mlsys.tensor(rng.random(np.broadcast_shapes(pair[0], pair[1])) > 0.5)
        return (lambda x, y: mlsys.where(cond, x, y)), [a, b]

    check(data.draw, build)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@SETTINGS
@given(data=st.data(), shape=st.lists(dims, min_size=1, max_size=3).map(tuple))
def test_softmax_family(fn, data, shape):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(data.draw, lambda rng: ((lambda x: getattr(x, fn)(dim)), [t(rng, shape)]))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(smoothing, rng):
    target = mlsys.tensor(np.array([0, 3, 1]))
    assert gradcheck(lambda z: F.cross_entropy(z, target, label_smoothing=smoothing),
                     t(rng, (3, 4)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction, rng):
    target = mlsys.tensor(np.array([2, 0, 2, 1]))
    assert gradcheck(lambda z: F.nll_loss(z, target, reduction=reduction), t(rng, (4, 3)))


def test_cross_entropy_matches_its_definition(rng):
    logits, target = rng.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    loss = F.cross_entropy(mlsys.tensor(logits), mlsys.tensor(target), label_smoothing=0.2)
    expected = (0.8 * -logp[np.arange(5), target] - 0.2 * logp.mean(1)).mean()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 1))])
def test_conv2d(stride, padding, rng):
    x, w, b = t(rng, (2, 2, 5, 4)), t(rng, (3, 2, 3, 2)), t(rng, (3,))
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), x, w, b)


def test_fold2d_directly(rng):
    params = dict(input_size=(4, 4), kernel_size=(2, 2), stride=(1, 1), padding=(1, 1))
    assert gradcheck(lambda c: NN.fold2d(c, **params), t(rng, (1, 8, 25)))


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling(pool, rng):
    x = mlsys.Tensor(rng.permutation(2 * 3 * 4 * 4).reshape(2, 3, 4, 4) * 0.1, requires_grad=True)
    fn = F.max_pool2d if pool == "max" else F.avg_pool2d
    assert gradcheck(lambda v: fn(v, 2), x)
    assert gradcheck(lambda v: fn(v, 3, stride=1, padding=1), x)


def test_layer_norm(rng):
    x, w, b = t(rng, (2, 3, 4)), t(rng, (4,)), t(rng, (4,))
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 4, w, b), x, w, b)


def test_embedding(rng):
    idx = mlsys.tensor(np.array([[1, 0], [1, 3]]))
    assert gradcheck(lambda w: F.embedding(idx, w), t(rng, (4, 3)))


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
    x = t(rng, (2, 3, 4))
    assert gradcheck(block, x, atol=1e-4)


COVERED = {"add", "sub", "mul", "div", "maximum", "neg", "exp", "log", "sqrt", "tanh", "sigmoid",
           "relu", "gelu", "gelu_grad", "cast", "pow", "sum", "mean", "max", "matmul", "reshape",
           "permute", "broadcast_to", "sum_to", "getitem", "scatter_add", "take", "put_add",
           "concatenate", "where", "softmax", "log_softmax", "unfold2d", "fold2d", "nll_loss"}


def test_every_differentiable_primitive_has_a_case():
    differentiable = {name for name, p in PRIMITIVES.items() if p.vjp is not None}
    assert differentiable - COVERED == set(), "add a gradcheck case for the new primitive"


def test_second_derivative_through_create_graph(rng):
    x = mlsys.Tensor(np.array([0.3, -1.2]), requires_grad=True)
    y = (x * x * x).sum()
    y.backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_gelu_grad_is_not_differentiable_twice():
    assert E.gelu_grad.vjp is None
