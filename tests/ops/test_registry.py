"""The registry's contract: every primitive's shape rule agrees with its forward, costs are sane."""

from __future__ import annotations

import numpy as np
import pytest

from mlsys.ops import PRIMITIVES, Cost, Primitive, Spec, get, register
from mlsys.ops.shape import Index

f32 = np.float32
R = np.random.default_rng(0)


def a(*shape, dtype=f32):
    return R.standard_normal(shape).astype(dtype)


def ints(*shape, high=3):
    return R.integers(0, high, size=shape)


# One example application (inputs, params) of every primitive.
EXAMPLES = {
    **{n: ((a(2, 3), a(3)), {}) for n in ("add", "sub", "mul", "div", "maximum", "greater",
                                          "greater_equal", "less", "less_equal", "equal",
                                          "not_equal")},
    "pow": ((np.abs(a(2, 3)) + 0.1, a(3)), {}),
    **{n: ((a(2, 3),), {}) for n in ("neg", "exp", "tanh", "sigmoid", "relu")},
    **{n: ((np.abs(a(2, 3)) + 0.1,), {}) for n in ("log", "sqrt")},
    "gelu": ((a(4),), {"approximate": "none"}),
    "gelu_grad": ((a(4),), {"approximate": "tanh"}),
    "where": ((a(2, 3) > 0, a(2, 3), a(1, 3)), {}),
    "cast": ((a(2),), {"dtype": np.dtype(np.float64)}),
    **{n: ((a(2, 3, 4),), {"axis": (0, 2), "keepdims": False}) for n in ("sum", "mean", "max")},
    "argmax": ((a(2, 3),), {"axis": (1,), "keepdims": True}),
    "matmul": ((a(5, 2, 3), a(3, 4)), {}),
    "reshape": ((a(2, 6),), {"shape": (3, 4)}),
    "permute": ((a(2, 3, 4),), {"axes": (2, 0, 1)}),
    "broadcast_to": ((a(3, 1),), {"shape": (2, 3, 4)}),
    "sum_to": ((a(2, 3, 4),), {"shape": (3, 1)}),
    "getitem": ((a(4, 5),), {"index": Index((slice(1, 3), np.array([0, 4])))}),
    "scatter_add": ((a(2, 2),), {"index": Index((slice(1, 3), np.array([0, 4]))), "shape": (4, 5)}),
    "take": ((a(4, 3), ints(2, 5, high=4)), {"axis": 0}),
    "put_add": ((a(2, 5, 3), ints(2, 5, high=4)), {"axis": 0, "size": 4}),
    "concatenate": ((a(2, 3), a(4, 3)), {"axis": 0}),
    "softmax": ((a(2, 3),), {"axis": 1}),
    "log_softmax": ((a(2, 3),), {"axis": 0}),
    "one_hot": ((ints(4),), {"num_classes": 3, "dtype": np.dtype(f32)}),
    "nll_loss": ((a(4, 3), ints(4)), {"reduction": "none"}),
    "nll_loss_grad": ((a(), ints(4)), {"classes": 3, "reduction": "mean"}),
    "unfold2d": ((a(2, 3, 5, 5),), {"kernel_size": (3, 3), "stride": (2, 1), "padding": (1, 0)}),
    "fold2d": ((a(2, 27, 9),), {"input_size": (5, 5), "kernel_size": (3, 3), "stride": (2, 1),
                                "padding": (1, 0)}),
    "dropout_mask": ((), {"shape": (3, 4), "p": 0.25, "dtype": np.dtype(f32)}),
    "random": ((), {"shape": (3, 4), "dtype": np.dtype(f32), "distribution": "normal"}),
}


def test_every_primitive_has_an_example():
    assert set(PRIMITIVES) - set(EXAMPLES) == set()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_shape_rule_matches_forward(name):
    prim = get(name)
    arrays, params = EXAMPLES[name]
    out = prim.forward(*arrays, **params)
    spec = prim.shape(*[Spec.of(x) for x in arrays], **params)
    assert spec.shape == out.shape
    assert np.dtype(spec.dtype) == np.result_type(out.dtype, spec.dtype)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_cost_rule_is_nonnegative(name):
    prim = get(name)
    arrays, params = EXAMPLES[name]
    specs = [Spec.of(x) for x in arrays]
    cost = prim.cost(*specs, out=prim.shape(*specs, **params), **params)
    assert isinstance(cost, Cost) and cost.flops >= 0 and cost.bytes >= 0


def test_matmul_cost_is_2mnk_and_bytes_moved():
    cost = get("matmul").cost(Spec((8, 16), f32), Spec((16, 4), f32), out=Spec((8, 4), f32))
    assert cost.flops == 2 * 8 * 16 * 4
    assert cost.bytes == 4 * (8 * 16 + 16 * 4 + 8 * 4)
    assert cost.intensity == pytest.approx(cost.flops / cost.bytes)


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register(Primitive("add", forward=np.add, shape=lambda *s: s[0],
                           cost=lambda *s, out: Cost(0, 0)))


def test_unknown_primitive_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown primitive 'addd'.*add"):
        get("addd")


def test_impure_and_elementwise_flags():
    assert not get("dropout_mask").pure
    assert get("relu").elementwise and not get("matmul").elementwise
