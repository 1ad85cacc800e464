import copy

import numpy as np
import pytest

import mlsys
from mlsys.graph import assign, run_graph, sgd_step, trace
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
    start = [p.data.copy() for p in model.parameters()]
    x, y = _batch()
    t = trace(sgd_step(model, lr=0.1, momentum=0.9), x, y)
    # eager reference: the library's optimizer
    opt = mlsys.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(reference(x), y)
    loss.backward()
    opt.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-7)
    ops = [n.op for n in t.graph.nodes]
    assert ops.count("matmul") == 3 + 5  # forward; backward: two per layer, none for dL/dx
    names = [t.graph.names[v] for v in t.graph.inputs]
    assert names[:2] == ["x", "y"] and "0.weight" in names and "momentum.4.bias" in names
    # replaying the graph from the starting state reproduces the traced step
    momenta = [np.zeros_like(s) for s in start]
    outs = run_graph(t.graph, x.data, y.data, *start, *momenta)
    assert np.isclose(outs[0], loss.item(), rtol=1e-6)
    for new, p in zip(outs[1:], model.parameters()):
        np.testing.assert_allclose(new, p.data, rtol=1e-6, atol=1e-7)


def test_constants_are_copied_and_outside_leaves_captured():
    w = mlsys.randn(4, requires_grad=True)
    t = trace(lambda x: x * w + 3.0, mlsys.randn(2, 4))
    assert len(t.graph.inputs) == 2 and t.captured == [w]
    (c,) = t.graph.consts.values()
    assert c == np.float32(3.0)


def test_assign_errors_name_the_problem():
    x = mlsys.randn(3)
    with pytest.raises(ValueError, match="argument or was computed inside"):
        trace(lambda a: assign(a, a * 2.0), x)
    with pytest.raises(ValueError, match=r"shape \(2,\) does not fit target of shape \(3,\)"):
        assign(x, mlsys.randn(2))
    with pytest.raises(TypeError, match="expected two Tensors"):
        assign(x, np.zeros(3))


def test_bad_return_value_and_nested_tracing_are_refused():
    with pytest.raises(TypeError, match="got dict"):
        trace(lambda a: {"a": a}, mlsys.randn(2))
    with pytest.raises(RuntimeError, match="nested"):
        trace(lambda a: trace(lambda b: b, a).result, mlsys.randn(2))


def test_tracing_leaves_backward_unpatched():
    from mlsys import backward

    before = backward._accumulate_leaf
    with pytest.raises(ZeroDivisionError):
        trace(lambda a: 1 / 0, mlsys.randn(2))
    assert backward._accumulate_leaf is before
    w = mlsys.randn(3, requires_grad=True)
    (w * 2.0).sum().backward()
    assert w.grad._node is None and np.allclose(w.grad.data, 2.0)
