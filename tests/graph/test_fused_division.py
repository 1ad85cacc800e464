"""Generated kernels divide with numpy's semantics, as the eager primitives do."""

import numpy as np

import mlsys
from mlsys.graph import Executable, optimize, trace


def test_fused_division_by_zero_gives_inf_and_nan_like_eager():
    def f(x, y):
        return (x / y) * 2.0 + 1.0

    x = mlsys.tensor(np.array([[1.0, -1.0, 0.0, 3.0]], np.float32))
    y = mlsys.tensor(np.array([[0.0, 0.0, 0.0, 2.0]], np.float32))
    with np.errstate(divide="ignore", invalid="ignore"):
        eager = f(x, y).data
        graph = optimize(trace(f, x, y).graph)
    assert [n.op for n in graph.nodes] == ["fused"]
    (compiled,) = Executable(graph)(x.data, y.data)
    np.testing.assert_array_equal(compiled, eager)  # inf, -inf, nan, 4
