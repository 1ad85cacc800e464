"""mlsys.compile never bakes silently: each value a trace depends on is a graph input or a guard,
and what a graph cannot hold falls back to eager with a warning naming it (or raises)."""

import re
import warnings

import numpy as np
import pytest

import mlsys
from mlsys import nn
from mlsys.graph import GraphBreak, GraphBreakWarning

HERE = r"test_compile_guards\.py:[0-9]+"


def _same(a, b):
    np.testing.assert_array_equal(a.data, b.data)


def test_integer_tensor_indices_are_inputs_not_constants():
    f = mlsys.compile(lambda x, i, j: (x[:, i] * 2.0, x[j], x[..., i][1:, None]))
    x = mlsys.randn(3, 5)
    for i, j in (([0, 1], [2]), ([4, -1], [0]), ([3, 3], [1])):
        i, j = mlsys.tensor(i), mlsys.tensor(j)
        for got, want in zip(f(x, i, j), (x.data[:, i.data] * 2, x.data[j.data],
                                          x.data[..., i.data][1:, None])):
            np.testing.assert_array_equal(got.data, want)
    assert len(next(iter(f.cache.values()))) == 1


def test_detach_and_clone_are_values_of_the_graph():
    f = mlsys.compile(lambda x: (x.detach() * 2.0, x.clone() + 1.0, mlsys.Tensor(x) * 3.0))
    for seed in range(3):
        x = mlsys.tensor(np.random.default_rng(seed).standard_normal(4).astype(np.float32))
        a, b, c = f(x)
        np.testing.assert_array_equal(a.data, x.data * 2)
        np.testing.assert_array_equal(b.data, x.data + 1)
        np.testing.assert_array_equal(c.data, x.data * 3)


def test_random_draws_are_fresh_every_call_and_in_the_eager_order():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5))

    def noisy(x):
        return model(x) + mlsys.randn(8) * 0.1 + mlsys.rand(2, 8)

    compiled = mlsys.compile(noisy)
    x = mlsys.randn(2, 4)
    mlsys.manual_seed(7)
    eager = [noisy(x).data for _ in range(4)]
    mlsys.manual_seed(7)
    fast = [compiled(x).data for _ in range(4)]
    for e, c in zip(eager, fast):
        np.testing.assert_array_equal(e, c)
    assert not np.array_equal(fast[2], fast[3])


def test_module_mode_attributes_and_parameters_are_guards():
    model = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.5))
    f = mlsys.compile(model)
    x = mlsys.randn(4, 3)
    with mlsys.no_grad():
        f(x), f(x)
        model.eval()
        _same(f(x), model(x))  # dropout is off: a traced training-mode graph would still drop
        model.train()
        assert (f(x).data == 0).any()
        model[1].p = 0.0
        _same(f(x), model(x))
        model[0].weight = nn.Parameter(np.ones((16, 3), np.float32))  # a new parameter object
        _same(f(x), model(x))
    model.train(True)  # no change: no retrace
    assert len(next(iter(f.cache.values()))) == 4


def test_parameters_frozen_or_not_and_buffers_are_read_at_every_call():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)
            self.lin.weight.requires_grad_(False)
            self.register_buffer("scale", mlsys.ones(2))

        def forward(self, x):
            return self.lin(x) * self.scale

    model = Scaled()
    f = mlsys.compile(model)
    x = mlsys.randn(5, 3)
    f(x), f(x)
    model.load_state_dict({"lin.weight": np.ones((2, 3)), "lin.bias": np.zeros(2),
                           "scale": np.array([2.0, 3.0])})
    np.testing.assert_allclose(f(x).data, x.data.sum(1, keepdims=True) * [2.0, 3.0], rtol=1e-6)
    model.lin.bias.requires_grad_(False)  # requires_grad of a parameter is a guard too
    _same(f(x), model(x))
    assert len(next(iter(f.cache.values()))) == 2


def test_one_tensor_passed_for_two_arguments_is_a_guard():
    f = mlsys.compile(lambda a, b: a * 2.0 - b)
    a, b = mlsys.randn(3), mlsys.randn(3)
    f(a, a), f(a, a)
    _same(f(a, b), a * 2.0 - b)
    _same(f(b, b), b * 2.0 - b)
    assert len(f.cache) == 2


def test_bool_of_a_tensor_is_a_guard_that_retraces_on_the_other_branch():
    traces = []

    def branchy(x):
        traces.append(1)
        noise = mlsys.rand(3)  # drawn before the branch: a wrong guess must not consume it
        return x * 2.0 + noise if x.sum() > 0 else x - noise

    f = mlsys.compile(branchy)
    signs = [1, 1, -1, -1, 1, -1, 1]
    mlsys.manual_seed(3)
    eager = [branchy(mlsys.full((3,), s)).data for s in signs]
    traces.clear()
    mlsys.manual_seed(3)
    for s, want in zip(signs, eager):
        np.testing.assert_array_equal(f(mlsys.full((3,), s)).data, want)
    assert len(traces) == 2  # one trace per branch, then only guards


@pytest.mark.parametrize("construct, program", [
    ("float()", lambda x: x * float(x.sum())),
    ("int()", lambda x: x * int(x.sum() > 0)),
    (".item()", lambda x: x - x.max().item()),
    (".tolist()", lambda x: x * sum(x.tolist())),
    (".numpy()", lambda x: x * x.numpy().sum()),
    ("boolean mask", lambda x: x[x > 0].sum() + x),
])
def test_values_read_into_python_are_graph_breaks_naming_construct_and_line(construct, program):
    f = mlsys.compile(program)
    pattern = f"graph break: .*{re.escape(construct)}.* at .*{HERE}"
    with pytest.warns(GraphBreakWarning, match=pattern):
        f(mlsys.randn(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once; eager from then on, and right
        for seed in range(3):
            x = mlsys.tensor(np.random.default_rng(seed).standard_normal(4).astype(np.float32))
            _same(f(x), program(x))
    with pytest.raises(GraphBreak, match=f"{re.escape(construct)}.* at .*{HERE}"):
        mlsys.compile(program, fullgraph=True)(mlsys.randn(4))


def test_reseeding_hooks_and_draws_the_graph_cannot_replay_are_graph_breaks():
    w = mlsys.randn(3, requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda t: None)
    programs = {"manual_seed": lambda x: (mlsys.manual_seed(1), x * 2.0)[1],
                "random draw outside": lambda x: x + mlsys.Tensor(mlsys.random.generator().random(3)),
                "post-accumulate-grad hook": lambda x: (x * w).sum().backward()}
    for construct, program in programs.items():
        with pytest.warns(GraphBreakWarning, match=re.escape(construct)):
            mlsys.compile(program)(mlsys.randn(3))


def test_too_many_retraces_fall_back_to_eager_with_a_warning():
    drop = nn.Dropout(0.5)
    f = mlsys.compile(drop, cache_limit=3)
    x = mlsys.ones(8)
    with pytest.warns(GraphBreakWarning, match="traced 3 times .*attribute of Dropout"):
        for p in (0.1, 0.2, 0.3, 0.4):
            drop.p = p
            f(x)
    drop.p = 0.0
    _same(f(x), x)


def test_outputs_never_alias_what_a_later_call_overwrites():
    state = mlsys.zeros(3)

    def f(x):
        mlsys.graph.assign(state, state + x)
        return (x * 2.0).exp(), mlsys.ones(3) * 1.0, state * 1.0, x, x.reshape(3, 1)

    compiled = mlsys.compile(f)
    x = mlsys.tensor([0.0, 1.0, 2.0])
    compiled(x)
    first = compiled(x)
    kept = [t.data.copy() for t in first]
    assert first[3] is x  # an argument returned is the argument, as eagerly
    for t in first[:3]:
        t.data[...] = -1.0  # editing a result in place must not reach the next call
    second = compiled(mlsys.tensor([5.0, 5.0, 5.0]))
    np.testing.assert_array_equal(second[1].data, 1.0)
    np.testing.assert_array_equal(state.data, kept[2] + 5.0)
    np.testing.assert_array_equal(first[4].data, kept[4])
    assert not np.shares_memory(second[2].data, state.data)


def test_in_place_zeroing_of_state_is_replayed():
    state = mlsys.ones(3)
    f = mlsys.compile(lambda x: x + state.zero_())
    for _ in range(3):
        state.data[...] = 5.0
        np.testing.assert_array_equal(f(mlsys.ones(3)).data, 1.0)
        np.testing.assert_array_equal(state.data, 0.0)


def test_float16_programs_compile_on_the_reference_path():
    h = mlsys.compile(lambda x: (x * 2.0 + 1.0).exp())
    x16 = mlsys.tensor(np.linspace(-1, 1, 5).astype(np.float16))
    h(x16)
    assert h(x16).dtype == np.float16 and "fused" not in h.graph(x16).text()
    _same(h(x16), (x16 * 2.0 + 1.0).exp())


def test_a_compiled_function_inside_a_traced_one_is_inlined():
    inner = mlsys.compile(lambda x: x * 3.0)
    outer = mlsys.compile(lambda x: inner(x) + 1.0)
    for v in (1.0, 2.0, 3.0):
        np.testing.assert_array_equal(outer(mlsys.full((2,), v)).data, 3 * v + 1)


def test_results_that_require_grad_say_why_backward_cannot_run():
    model = nn.Linear(3, 1)
    f = mlsys.compile(model)
    x = mlsys.randn(2, 3)
    f(x)
    out = f(x)
    assert out.requires_grad
    with pytest.raises(RuntimeError, match="compile the whole step"):
        out.sum().backward()
