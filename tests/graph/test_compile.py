import copy

import numpy as np
import pytest

import mlsys
from mlsys.data import DataLoader, load_digits
from mlsys.graph import run_epochs, sgd_step
from mlsys.graph.codegen import compile_fused
from mlsys.training import evaluate


def test_compile_trains_the_mlp_to_the_same_accuracy_as_eager():
    train = DataLoader(load_digits("train"), batch_size=64, shuffle=True, seed=1)
    test = DataLoader(load_digits("test"), batch_size=256)
    eager_model = mlsys.models.mlp()
    compiled_model = copy.deepcopy(eager_model)
    eager = run_epochs(sgd_step(eager_model, lr=0.1, momentum=0.9), train, epochs=3)
    train.generator = np.random.default_rng(1)  # the same batches again
    step = mlsys.compile(sgd_step(compiled_model, lr=0.1, momentum=0.9))
    compiled = run_epochs(step, train, epochs=3)
    assert len(step.cache) == 2  # full batches and the smaller last batch
    np.testing.assert_allclose(compiled, eager, rtol=1e-3)
    acc_eager, acc_compiled = evaluate(eager_model, test), evaluate(compiled_model, test)
    assert acc_eager > 0.9 and abs(acc_compiled - acc_eager) <= 0.01
    for p, q in zip(eager_model.parameters(), compiled_model.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-3, atol=1e-4)


def test_compiled_function_returns_tensors_and_retraces_per_signature():
    calls = []

    @mlsys.compile
    def f(x, scale):
        calls.append(1)
        return (x * scale).exp(), x.sum()

    a = mlsys.randn(3, 2)
    first = f(a, 2.0)
    second = f(a, 2.0)
    assert len(calls) == 1 and isinstance(second[0], mlsys.Tensor)
    np.testing.assert_allclose(second[0].data, first[0].data, rtol=1e-6)
    f(a, 3.0)
    f(mlsys.randn(4, 2), 2.0)
    assert len(calls) == 3 and len(f.cache) == 3
    assert "fused[mul+exp]" in f.graph(a, 2.0).text()
    with pytest.raises(TypeError, match="must be hashable"):
        f(a, np.ones(2))
    with pytest.raises(ValueError, match="expects float32"):
        f.cache[next(iter(f.cache))][0].executable(np.zeros((3, 2), np.float64))


def test_kernels_are_cached_by_source(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSYS_KERNEL_CACHE", str(tmp_path))
    g = mlsys.graph.optimize(mlsys.trace(lambda x: (x * 3.0 + 1.0).tanh(), mlsys.randn(5)).graph)
    (node,) = g.nodes
    k1, k2 = compile_fused(node.fused), compile_fused(node.fused)
    assert k1._fn is k2._fn
    assert len(list(tmp_path.glob("k_*.py"))) == 1
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    np.testing.assert_allclose(k1(x), np.tanh(x * 3 + 1), rtol=1e-6)
    with pytest.raises(TypeError, match="expected 1 inputs, got 2"):
        k1(x, x)
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        k1(x, out=np.empty(4, np.float32))
