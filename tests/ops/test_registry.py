"""The registry's contract: every primitive's shape rule agrees with its forward, costs are sane,
and what it says about lowering (templates, flags, algebra) is complete and consistent."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from op_examples import EXAMPLES

from mlsys.ops import PRIMITIVES, Cost, Primitive, Spec, get, register
from mlsys.ops.registry import SCALAR_FUNCTIONS

f32 = np.float32


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


def _names(expr: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}


@pytest.mark.parametrize("name", sorted(n for n, p in PRIMITIVES.items() if p.elementwise))
def test_scalar_templates_use_only_the_shared_vocabulary(name):
    """Every backend binds exactly these names, so a template any backend compiles all do."""
    prim = get(name)
    _, params = EXAMPLES[name]
    operands = [f"x{k}" for k in range(prim.arity)]
    expr = prim.scalar_expr(operands, params)
    allowed = set(SCALAR_FUNCTIONS) | set(operands) | {"F", "np", "abs"}
    assert _names(expr) <= allowed, f"{name}: {sorted(_names(expr) - allowed)}"
    assert prim.arity == len(EXAMPLES[name][0])


@pytest.mark.parametrize("name", sorted(n for n, p in PRIMITIVES.items() if p.elementwise))
def test_scalar_template_matches_the_forward(name):
    """Evaluated element by element in Python, each template gives its primitive's forward."""
    prim = get(name)
    arrays, params = EXAMPLES[name]
    shape = np.broadcast_shapes(*(x.shape for x in arrays))
    source = prim.scalar_function(params)
    namespace = {"F": np.float32, "np": np, **{f: getattr(np, f) for f in SCALAR_FUNCTIONS
                                               if hasattr(np, f)}}
    from scipy.special import erf
    namespace["erf"] = erf
    exec(source, namespace)
    flat = [np.broadcast_to(x, shape).reshape(-1) for x in arrays]
    values = np.array([namespace["f"](*(x[i] for x in flat)) for i in range(len(flat[0]))])
    expected = prim.forward(*arrays, **params)
    np.testing.assert_allclose(values.reshape(shape).astype(expected.dtype), expected, rtol=2e-6,
                               atol=1e-6)


def test_lowering_flags():
    assert {n for n, p in PRIMITIVES.items() if p.view} == {"reshape", "permute", "broadcast_to",
                                                          "getitem"}
    reductions = {n: p.reduction for n, p in PRIMITIVES.items() if p.reduction is not None}
    assert set(reductions) == {"sum", "mean", "max", "min", "prod"}
    assert reductions["mean"].mean and not reductions["sum"].mean
    assert get("concatenate").arity is None and get("where").arity == 3
    assert get("gelu").multipass and not get("add").multipass
    for name, prim in PRIMITIVES.items():
        if prim.arity is not None:
            assert len(EXAMPLES[name][0]) == prim.arity, name


def test_an_elementwise_primitive_must_say_how_it_lowers():
    with pytest.raises(ValueError, match="'twice' is elementwise: give its arity and scalar template"):
        register(Primitive("twice", forward=lambda x: 2 * x, shape=lambda x: x,
                           cost=lambda x, *, out: Cost(0, 0), elementwise=True))
    assert "twice" not in PRIMITIVES


def test_kernels_are_registered_by_primitive_object():
    prim = Primitive("scratch", forward=np.negative, shape=lambda x: x, cost=lambda x, *, out: Cost(0, 0))

    @prim.implement("numba")
    def kernel(x):
        return -x

    assert prim.impls == {"numba": kernel}
