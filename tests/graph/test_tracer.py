import copy
import re

import numpy as np
import pytest

import mlsys
from mlsys.graph import GraphBreak, assign, run_graph, sgd_step, trace
from mlsys.nn import functional as F


def _batch(n=16):
    rng = np.random.default_rng(0)
    return (mlsys.tensor(rng.standard_normal((n, 64)).astype(np.float32)),
            mlsys.tensor(rng.integers(0, 10, n)))


def test_forward_trace_replays_on_new_inputs():
    t = trace(lambda a, b: (a * b + a).tanh(), mlsys.randn(3, 4), mlsys.randn(4))
    a, b = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    (out,) = run_graph(t.graph, a, b[0])
    np.testing.assert_allclose(out, np.tanh(a * b[0] + a), rtol=1e-6)


def test_training_step_is_one_graph_matching_the_eager_optimizer():
    model = mlsys.models.mlp(depth=2)
    reference = copy.deepcopy(model)
    x, y = _batch()
    step = sgd_step(model, lr=0.1, momentum=0.9)
    step(x, y)  # the first step makes the momentum buffers
    opt = mlsys.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # eager reference: the same optimizer in a plain loop
        opt.zero_grad()
        loss = F.cross_entropy(reference(x), y)
        loss.backward()
        opt.step()
    start = [t.data.copy() for t in (*model.parameters(), *step.optimizer.state_tensors())]
    t = trace(step, x, y)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-7)
    ops = [n.op for n in t.graph.nodes]
    assert ops.count("matmul") == 3 + 5  # forward; backward: two per layer, none for dL/dx
    names = [t.graph.names[v] for v in t.graph.inputs]
    assert names[:2] == ["x", "y"] and "0.weight" in names and "momentum_buffer.4.bias" in names
    assert t.captured == [*model.parameters(), *step.optimizer.state_tensors()]
    # replaying the graph from the starting state reproduces the traced step: loss, parameters
    # and momentum buffers (the state updates, in the order of the inputs they replace)
    outs = run_graph(t.graph, x.data, y.data, *start)
    assert np.isclose(outs[0], loss.item(), rtol=1e-6)
    updated = dict(zip(map(id, t.updated), outs[1:]))
    for p in t.captured:
        np.testing.assert_allclose(updated[id(p)], p.data, rtol=1e-6, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())  # the step clears gradients


def test_tensors_made_inside_are_constants_and_tensors_found_outside_are_inputs():
    w = mlsys.randn(4, requires_grad=True)
    frozen = mlsys.randn(4)  # not a parameter, not requiring grad: still read at every call
    t = trace(lambda x: x * w + frozen + 3.0 + mlsys.ones(4), mlsys.randn(2, 4))
    assert len(t.graph.inputs) == 3 and t.captured == [w, frozen]
    assert sorted(float(c.sum()) for c in t.graph.consts.values()) == [3.0, 4.0]
    x = np.ones((2, 4), np.float32)
    frozen.data = np.full(4, 10.0, np.float32)
    (out,) = run_graph(t.graph, x, w.data, frozen.data)
    np.testing.assert_allclose(out, x * w.data + 10.0 + 4.0, rtol=1e-6)


def test_detach_clone_and_tensor_indices_are_values_not_constants():
    def f(x, i):
        return x.detach() * 2.0 + x.clone() + mlsys.Tensor(x), x[:, i], x[1:, i, None]

    x, i = mlsys.randn(3, 5), mlsys.tensor([4, 0])
    t = trace(f, x, i)
    assert not t.graph.consts.keys() - {v for v in t.graph.consts if v.spec.shape == ()}
    assert [n.op for n in t.graph.nodes].count("take") == 2
    x2, i2 = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32), np.array([1, -1])
    a, b, c = run_graph(t.graph, x2, i2)
    np.testing.assert_allclose(a, 4 * x2, rtol=1e-6)
    np.testing.assert_array_equal(b, x2[:, i2])
    np.testing.assert_array_equal(c, x2[1:, i2, None])


def test_assign_stores_state_and_rebinds_temporaries():
    state = mlsys.zeros(3)

    def f(x):
        tmp = x * 1.0
        assign(tmp, tmp + 1.0)  # a temporary: just the new value from here on
        assign(state, state + tmp)
        return tmp

    t = trace(f, mlsys.ones(3))
    assert t.updated == [state] and np.allclose(state.data, 2.0)
    out, new_state = run_graph(t.graph, np.full(3, 5.0, np.float32), np.ones(3, np.float32))
    np.testing.assert_allclose(out, 6.0)
    np.testing.assert_allclose(new_state, 7.0)


def test_assign_errors_name_the_problem():
    x = mlsys.randn(3)
    with pytest.raises(ValueError, match=r"shape \(2,\) does not fit target of shape \(3,\)"):
        assign(x, mlsys.randn(2))
    with pytest.raises(TypeError, match="expected two Tensors"):
        assign(x, np.zeros(3))


def test_results_may_nest_and_nested_tracing_is_refused():
    t = trace(lambda a, pair: {"sum": a + pair[0], "both": [pair[1], 2]}, mlsys.randn(2),
              (mlsys.randn(2), mlsys.randn(2)))
    assert t.n_args == 3 and isinstance(t.result, dict) and t.result["both"][1] == 2
    assert [t.graph.names[v] for v in t.graph.inputs] == ["a", "pair[0]", "pair[1]"]
    with pytest.raises(RuntimeError, match="nested"):
        trace(lambda a: trace(lambda b: b, a).result, mlsys.randn(2))


@pytest.mark.parametrize("construct, program", [
    ("float()", lambda x: x * float(x.sum())),
    (".item()", lambda x: x + x.max().item()),
    ("bool()", lambda x: x if x.sum() > 0 else -x),
    (".tolist()", lambda x: x * len(x.tolist())),
    ("boolean mask", lambda x: x[x > 0]),
    ("manual_seed", lambda x: (mlsys.manual_seed(0), x)[1]),
    ("random draw outside", lambda x: x + mlsys.Tensor(mlsys.random.generator().random(3))),
])
def test_trace_refuses_what_a_graph_cannot_hold_naming_it_and_its_line(construct, program):
    with pytest.raises(GraphBreak, match=f"{re.escape(construct)}.* at .*test_tracer.py:[0-9]+"):
        trace(program, mlsys.randn(3))


def test_backward_is_observed_without_patching_it():
    from mlsys import backward

    before = backward._accumulate_leaf
    w = mlsys.randn(3, requires_grad=True)

    def f(x):
        (x * w).sum().backward()
        return w.grad

    t = trace(f, mlsys.randn(3))
    assert backward._accumulate_leaf is before and t.grads and not t.graph.consts.keys() - {
        v for v in t.graph.consts if v.spec.shape == ()}
    (g,) = run_graph(t.graph, np.arange(3, dtype=np.float32), w.data)[:1]
    np.testing.assert_array_equal(g, np.arange(3))
    with pytest.raises(ZeroDivisionError):
        trace(lambda a: 1 / 0, mlsys.randn(2))
    w.grad = None
    (w * 2.0).sum().backward()
    assert w.grad._node is None and np.allclose(w.grad.data, 2.0)
