"""Generated fused kernels: fused == unfused on random programs (broadcasting, trailing
reductions, inf and NaN, float32 and float64), the same bits serial or parallel on any number of
threads, in place, empty and 0-d index spaces, and SIMD code for transcendental chains."""

from __future__ import annotations

import platform

import numba
import numpy as np
import pytest

import mlsys
from mlsys.graph import Executable, trace
from mlsys.graph.codegen import compile_fused, generate_source, layout
from mlsys.graph.passes import fuse_elementwise
from mlsys.kernels.cpu import vmath
from mlsys.kernels.cpu.generated import SCALAR_IMPORTS
from mlsys.nn import functional as F

SHAPE = (3, 4, 70)  # a row longer than a SIMD vector, shorter than a tile
BROADCASTS = [SHAPE, (4, 70), (70,), (3, 1, 70), (3, 4, 1), (1, 4, 1), ()]
UNARY = [lambda a: a.exp(), lambda a: a.tanh(), lambda a: a.sigmoid(), lambda a: a.relu(),
         lambda a: (a * a + 1.0).log(), lambda a: a.abs().sqrt(), lambda a: -a,
         lambda a: F.gelu(a), lambda a: F.gelu(a, approximate="tanh"), lambda a: a * 0.5 - 1.0]
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
          lambda a, b: mlsys.maximum(a, b), lambda a, b: mlsys.minimum(a, b),
          lambda a, b: mlsys.where(a > b, a, b * 2.0)]
REDUCTIONS = [None, lambda v: v.sum(-1), lambda v: v.mean((1, 2), keepdim=True),
              lambda v: v.max(-1).values, lambda v: v.sum()]


def _program(seed: int, n_inputs: int):
    """A random elementwise DAG over ``n_inputs`` values, with an optional trailing reduction."""
    rng = np.random.default_rng(seed)
    steps = [(int(rng.integers(2)), int(rng.integers(10)), int(rng.integers(10)), int(rng.integers(10)))
             for _ in range(7)]
    reduce = REDUCTIONS[seed % len(REDUCTIONS)]

    def program(*xs):
        values = list(xs) + [xs[0] * 1.0]  # a value of the full shape: the group's index space
        for binary, op, i, j in steps:
            a, b = values[i % len(values)], values[j % len(values)]
            values.append(BINARY[op % len(BINARY)](a, b) if binary else UNARY[op](a))
        out = values[-1] + values[len(xs)]
        return out if reduce is None else reduce(out)

    return program


def _inputs(seed: int, dtype: type) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + seed)
    shapes = [SHAPE] + [BROADCASTS[int(k)] for k in rng.integers(0, len(BROADCASTS), size=2)]
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    flat = arrays[0].reshape(-1)
    flat[rng.integers(0, flat.size, size=6)] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30]
    return arrays


def _fused_and_unfused(fn, arrays):
    with np.errstate(all="ignore"):  # tracing runs the program once, on inf and NaN too
        graph = trace(fn, *[mlsys.tensor(a) for a in arrays]).graph
    fused = fuse_elementwise(graph).verify()
    return Executable(fused), Executable(graph), fused


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(5))
def test_fused_kernels_match_unfused_numpy_on_random_programs(seed, dtype):
    arrays = _inputs(seed, dtype)
    fused, unfused, graph = _fused_and_unfused(_program(seed, len(arrays)), arrays)
    assert any(n.fused is not None for n in graph.nodes)
    with np.errstate(all="ignore"):
        (got,), (want,) = fused(*arrays), unfused(*arrays)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])  # same infinities
    finite = np.isfinite(want)
    scale = max(1.0, float(np.abs(want[finite]).max(initial=0)))
    rtol = 2e-5 if dtype == np.float32 else 1e-12  # float32: vmath's polynomials, a reordered sum
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=rtol * scale)


def _group(fn, *arrays):
    graph = fuse_elementwise(trace(fn, *[mlsys.tensor(a) for a in arrays]).graph)
    (node,) = [n for n in graph.nodes if n.fused is not None]
    return node.fused


@pytest.mark.parametrize("reduce", [None, "rows", "all"])
def test_parallel_kernels_give_the_serial_bits_on_any_number_of_threads(reduce):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((9, 3000)).astype(np.float32), rng.standard_normal((9, 1)).astype(np.float32)
    chains = {None: lambda x, y: (x * y).tanh() * x.exp(),
              "rows": lambda x, y: ((x * y).tanh() * x.exp()).sum(1),
              "all": lambda x, y: ((x * y).tanh() * x.exp()).mean()}
    fused = _group(chains[reduce], x, y)
    serial, parallel = compile_fused(fused, parallel=False), compile_fused(fused, parallel=True)
    assert "numba.prange" in parallel.source and "numba.prange" not in serial.source
    expected = serial(x, y)
    threads = numba.get_num_threads()
    try:
        for n in {1, threads}:
            numba.set_num_threads(n)
            np.testing.assert_array_equal(parallel(x, y), expected)
    finally:
        numba.set_num_threads(threads)
    reference = chains[reduce](mlsys.tensor(x), mlsys.tensor(y)).data
    np.testing.assert_allclose(expected, reference, rtol=1e-5)


def test_a_kernel_may_write_over_its_input():
    rng = np.random.default_rng(1)
    x, b = rng.standard_normal((5, 2100)).astype(np.float32), rng.standard_normal(2100).astype(np.float32)
    kernel = compile_fused(_group(lambda x, b: (x + b).sigmoid() * x, x, b))
    expected = kernel(x, b)
    assert kernel(x, b, out=x) is x
    np.testing.assert_array_equal(x, expected)


def test_layout_merges_dimensions_inputs_span_alike_and_keeps_the_reduction_apart():
    x3 = np.zeros((8, 4, 16), np.float32)
    assert layout(_group(lambda x: (x * 2.0).exp(), x3)).dims == (512,)
    bias = np.zeros(16, np.float32)
    lay = layout(_group(lambda x, b: (x + b).exp(), x3, bias))
    assert lay.dims == (32, 16) and lay.spans == ((True, True), (False, True))
    assert lay.input_shape(1) == (16,)
    per_row = np.zeros((8, 1, 1), np.float32)
    lay = layout(_group(lambda x, r: (x * r).exp().sum((1, 2)), x3, per_row))
    assert lay.dims == (8, 64) and lay.lead == 1 and lay.input_shape(1) == (8, 1)


def test_per_row_values_join_the_group_and_are_computed_once_per_row_block():
    rng = np.random.default_rng(4)
    x, y, a = (rng.standard_normal(s).astype(np.float32) for s in [(6, 300), (6, 1), (300,)])
    graph = fuse_elementwise(trace(lambda x, y, a: ((x * y.sigmoid() + (y * y).tanh()).exp() + a.exp())
                                   .sum(1), *map(mlsys.tensor, (x, y, a))).graph)
    # sigmoid(y) and tanh(y * y) join (constant along a row); exp(a) varies along the row, and
    # would be recomputed for every row inside the group, so it stays a kernel of its own
    assert [n.op for n in graph.nodes] == ["exp", "fused"]
    source = generate_source(graph.nodes[1].fused)
    source = source[source.index("def kernel"):]
    loop = source.index("for j in range(m):")
    assert source.index("tanh(") < loop and source.index("exp(-x") < loop
    (got,) = Executable(graph)(x, y, a)
    want = (np.exp(x / (1 + np.exp(-y)) + np.tanh(y * y)) + np.exp(a)).sum(1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_empty_and_zero_dimensional_groups():
    empty = np.zeros((0, 5), np.float32)
    assert compile_fused(_group(lambda x: (x * 2.0).exp(), empty))(empty).shape == (0, 5)
    rows = empty.T.copy()
    sums = compile_fused(_group(lambda x: (x * 2.0).exp().sum(1), rows))
    assert sums.fused.reduces
    np.testing.assert_array_equal(sums(rows), np.zeros(5, np.float32))
    scalar = np.array(0.5, np.float64)
    out = compile_fused(_group(lambda x: (x * 2.0).tanh() + 1.0, scalar))(scalar)
    assert out.shape == () and out == np.tanh(1.0) + 1.0


def test_non_contiguous_inputs():
    x = np.random.default_rng(2).standard_normal((6, 40)).astype(np.float32)
    kernel = compile_fused(_group(lambda x: (x * 3.0).tanh(), x.T.copy()))
    np.testing.assert_allclose(kernel(x.T), np.tanh(x.T * 3.0), rtol=1e-6, atol=4e-7)


def test_the_source_names_the_vmath_it_inlines():
    """Numba's disk cache is keyed by the generated file, whose name is a hash of its text: a
    change to vmath must change the text, or a stale kernel would load."""
    source = generate_source(_group(lambda x: x.exp() * 2.0, np.zeros(4, np.float32)))
    assert all(line in source for line in SCALAR_IMPORTS)
    import hashlib
    from pathlib import Path
    digest = hashlib.sha1(Path(vmath.__file__).read_bytes()).hexdigest()[:16]
    assert f"vmath {digest}" in source


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 assembly")
def test_transcendental_chains_compile_to_simd_code():
    x = np.random.default_rng(3).standard_normal((4, 300)).astype(np.float32)
    chain = lambda x: (F.gelu(x) * x.sigmoid() + (x * x).tanh()).exp().sum(1)  # noqa: E731
    kernel = compile_fused(_group(chain, x), parallel=False)
    fresh = numba.njit(error_model="numpy")(kernel._fn.py_func)  # code loaded from disk hides its asm
    fresh(np.empty(4, np.float32), kernel._dims, x)
    asm = "\n".join(fresh.inspect_asm().values())
    packed = sum(asm.count(op) for op in ("mulps", "addps", "divps"))  # vmulps etc. with AVX
    assert packed > 25, "the tile loop was not vectorized"  # about 35 when it is, 13 when not


def _run_in_fork(kernel, x, y, results):
    results.put(kernel(x, y))


def test_a_forked_child_runs_parallel_kernels_serially():
    """GNU OpenMP's pool does not survive fork: a child of a process that used it must not run a
    parallel loop (it would abort), yet DataLoader workers and mlsys.comm ranks are forked."""
    import multiprocessing

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((9, 3000)).astype(np.float32), rng.standard_normal((9, 1)).astype(np.float32)
    kernel = compile_fused(_group(lambda x, y: ((x * y).tanh() * x.exp()).sum(1), x, y), parallel=True)
    expected = kernel(x, y)  # the parent's pool is running now
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_run_in_fork, args=(kernel, x, y, results))
    child.start()
    child.join(120)  # the result is 36 bytes: the queue never blocks the child's exit
    if child.exitcode is None:
        child.kill()
        child.join()
    assert child.exitcode == 0, f"the forked child ended with {child.exitcode}"
    np.testing.assert_array_equal(results.get(timeout=10), expected)
