"""The "cuda" device's kernels on device arrays, each strategy against numpy (tiny shapes: the
CUDA simulator runs them when there is no GPU), and compiled graphs on the device."""

from __future__ import annotations

import importlib
import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import mlsys
from mlsys.graph.codegen import generate_source
from mlsys.graph.codegen_cuda import CudaFusedKernel, generate_cuda_source
from mlsys.graph.executor_cuda import CudaExecutable
from mlsys.graph.ir import Fused, Graph, Node, fresh
from mlsys.kernels import traffic
from mlsys.kernels.cuda import indexing, loops, matmul, nn
from mlsys.kernels.cuda.memory import ALLOCATOR, DeviceArray, count_transfers, download, empty, upload
from mlsys.kernels.cuda.runtime import SIMULATOR
from mlsys.ops import PRIMITIVES, Spec

DEVICE = "cuda"
REDUCTIONS = sorted(n for n, p in PRIMITIVES.items() if p.reduction is not None)
# primitives with operands that have no CUDA kernel: the reference checks its input on the host
HOST_ONLY = {"binary_cross_entropy"}


def _op_examples() -> dict:
    """The backend matrix's example application of every primitive (tests/ops/op_examples.py)."""
    path = Path(__file__).resolve().parents[1] / "ops" / "op_examples.py"
    spec = importlib.util.spec_from_file_location("cuda_op_examples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EXAMPLES


def test_every_primitive_with_operands_runs_a_cuda_kernel() -> None:
    """The backend matrix on "cuda" with fallbacks made errors (it ignores them: it checks
    values). Nullary primitives (random draws) make host tensors on every device."""
    assert all(DEVICE not in PRIMITIVES[name].impls for name in HOST_ONLY)
    ran = []
    for name, (arrays, params) in sorted(_op_examples().items()):
        if not arrays or name in HOST_ONLY:
            continue
        inputs = [mlsys.Tensor(np.array(a, copy=True)).to(DEVICE) for a in arrays]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a fallback to the numpy reference
            out = PRIMITIVES[name](*inputs, **params)
        assert out.device == DEVICE and isinstance(out._data, DeviceArray), name
        ran.append(name)
    assert set(ran) == {n for n, p in PRIMITIVES.items() if p.arity != 0} - HOST_ONLY


@pytest.mark.parametrize("strategy", ["threads", "rows"])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_over_any_axes(name: str, strategy: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4, 5)).astype(np.float32) + 2
    d = upload(x)
    prim = PRIMITIVES[name]
    cases = [(None, False), ((0,), True), ((1, 2), False), ((0, 2), False)]
    for axis, keepdims in cases[2:] if strategy == "rows" else cases:  # rows: a block per output
        spec = prim.shape(Spec.of(x), axis=axis, keepdims=keepdims)
        got = download(loops.reduction(prim, d, axis, keepdims, spec.dtype, strategy))
        want = prim.forward(x, axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=f"{name} {axis}")


def test_integer_and_bool_reductions_accumulate_exactly() -> None:
    big = np.array([[2**40, 3, -7], [1, 1, 1]], np.int64)
    d = upload(big)
    np.testing.assert_array_equal(download(loops.reduction(PRIMITIVES["sum"], d, (1,), False, np.int64)),
                                  big.sum(1))
    np.testing.assert_array_equal(download(loops.reduction(PRIMITIVES["max"], d, None, False, np.int64)),
                                  big.max())
    flags = upload(np.array([True, False, True]))
    assert download(loops.reduction(PRIMITIVES["sum"], flags, None, False, np.int64)) == 2


@pytest.mark.parametrize("strategy", ["threads", "rows"])
def test_softmax_strategies_match_the_reference_with_inf_and_nan(strategy: str) -> None:
    x = np.array([[1000.0, 999.0, 0.0, -3.0], [-np.inf, -np.inf, -np.inf, -np.inf],
                  [1.0, np.nan, 2.0, 0.0], [0.5, -np.inf, 0.25, 3.0]], np.float32)
    for log, prim in [(False, PRIMITIVES["softmax"]), (True, PRIMITIVES["log_softmax"])]:
        with np.errstate(all="ignore"):
            want = prim.forward(x, axis=1)
            got = download(nn.softmax(upload(x), 1, log, strategy))
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
            cols = download(nn.softmax(upload(x.T.copy()), 0, log, strategy))
            np.testing.assert_allclose(cols, prim.forward(x.T.copy(), axis=0), rtol=1e-6, atol=1e-7)


def test_row_kernels_take_0d_arrays_and_zero_length_axes() -> None:
    scalar, hollow = np.array(2.0, np.float32), np.zeros((2, 0, 3), np.float32)
    for x, axes in [(scalar, (0, -1)), (hollow, (0, 1, 2))]:
        for axis in axes:
            for log in (False, True):
                got = download(nn.softmax(upload(x), axis, log))
                want = np.zeros_like(x) if log else np.ones_like(x)  # one element per row, or none
                assert got.shape == x.shape and (got == want).all()
            cumsum = download(nn.cumsum(upload(x), axis, np.dtype(np.float32)))
            np.testing.assert_array_equal(cumsum, np.cumsum(x, axis) if x.ndim else x)
    for axis in (0, 1, 2):
        order = download(nn.argsort(upload(hollow), axis, False))
        assert order.shape == hollow.shape and order.dtype == np.int64
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(download(nn.cumsum(upload(x), -2, np.dtype(np.float32))),
                                  x.cumsum(0))  # an axis counted from the end
    with pytest.raises(ValueError, match="strategy must be 'rows', 'threads' or None, got 'warp'"):
        nn.softmax(upload(scalar), 0, strategy="warp")


@pytest.mark.parametrize("stage", list(matmul.STAGES))
def test_engine_matmul_takes_batched_broadcast_and_transposed_operands(stage: str,
                                                                       rng: np.random.Generator) -> None:
    a = rng.standard_normal((2, 9, 5), dtype=np.float32)
    w = rng.standard_normal((7, 5), dtype=np.float32)
    out = empty((2, 9, 7), np.float32)
    matmul.matmul_into(out, upload(a), upload(w).T, stage)  # (2, 9, 5) @ (5, 7), w.T a view
    np.testing.assert_allclose(download(out), a @ w.T, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown stage 'blas'"):
        matmul.matmul_into(out, upload(a), upload(w).T, "blas")


@pytest.mark.skipif(not SIMULATOR, reason="traffic is counted in the CUDA simulator")
def test_two_dimensional_blocking_reuses_both_operands_from_registers(rng: np.random.Generator) -> None:
    n, tile = 16, 16  # one block of 64 threads, each a 2 x 2 block of C
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = traffic.tracked(np.zeros((n, n), np.float32))
    grid, block = matmul.launch_shape("blocked", n, n, tile)
    with traffic.counting() as log:
        matmul.blocked_kernel(tile)[grid, block](traffic.tracked(a), traffic.tracked(b), c)
    np.testing.assert_allclose(c.array, a @ b, rtol=1e-4, atol=1e-4)
    counts = log.summary()
    assert counts["global_loads"] == 2 * n**3 // tile and counts["shared_loads"] == 2 * n**3 // 2


def test_index_checks_use_known_bounds_and_match_the_reference_message() -> None:
    logp = mlsys.tensor(np.zeros((3, 4), np.float32)).to("cuda")
    target = mlsys.tensor(np.array([0, 3, 4])).to("cuda")
    with count_transfers() as moved, pytest.raises(IndexError,
                                                   match="class index 4 is out of range for 4"):
        mlsys.nn.functional.nll_loss(logp, target)
    assert moved.count == 0  # the bounds were noted when the targets were uploaded
    computed = (target.to(np.float32) - 4.0).long()  # made on the device: bounds unknown
    with count_transfers() as moved, pytest.raises(IndexError, match="class index -4 is out"):
        mlsys.nn.functional.nll_loss(logp, computed)
    assert (moved.to_host, moved.to_host_bytes) == (1, 16)  # the index range, measured there
    with pytest.raises(IndexError, match="take: index 5 is out of range for dimension 0 of size 3"):
        mlsys.tensor(np.ones((3, 2), np.float32)).to("cuda")[mlsys.tensor(np.array([5])).to("cuda")]


def test_indexing_with_arrays_gathers_adds_and_writes_through_positions(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 5)).astype(np.float32)
    for key in [(np.array([0, 2, 0]),), (slice(1, 3), np.array([0, 4, 4])), (x > 0,),
                (np.array([[1], [2]]), np.array([0, 3]))]:
        v = rng.standard_normal(x[key].shape).astype(np.float32)
        with count_transfers() as moved:
            got = indexing.getitem(upload(x), key)
        assert (moved.to_device, moved.to_host) == (2, 0)  # x, and the selected positions
        np.testing.assert_array_equal(download(got), x[key])
        written = x.copy()
        written[key] = v  # a repeated position keeps the last value, as numpy's
        np.testing.assert_array_equal(download(indexing.setitem(upload(x), upload(v), key)), written)
        added = np.zeros_like(x)
        np.add.at(added, key, v)
        np.testing.assert_allclose(download(indexing.scatter_add(upload(v), key, x.shape)), added,
                                   rtol=1e-6)


def test_argsort_and_argmax_follow_the_reference_on_ties_and_nan() -> None:
    x = np.array([[1.0, np.nan, 1.0, -2.0, 1.0], [3.0, 3.0, np.nan, np.nan, 0.0]], np.float32)
    for descending in (False, True):
        np.testing.assert_array_equal(download(nn.argsort(upload(x), 1, descending)),
                                      PRIMITIVES["argsort"].forward(x, axis=1, descending=descending))
    for smallest, pick in ((False, np.argmax), (True, np.argmin)):
        got = nn.arg_extremum(upload(x), (1,), False, smallest)
        np.testing.assert_array_equal(download(got), pick(x, axis=1))
        assert got.bounds == (0, 4)


@pytest.mark.parametrize("stride,padding", [((1, 1), (1, 1)), ((2, 3), (0, 2))])
def test_im2col_and_its_adjoint(stride: tuple, padding: tuple, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 6, 7), dtype=np.float32)
    params = {"kernel_size": (3, 2), "stride": stride, "padding": padding}
    cols = PRIMITIVES["unfold2d"].forward(x, **params)
    np.testing.assert_array_equal(download(nn.unfold2d(upload(x), **params)), cols)
    np.testing.assert_allclose(download(nn.fold2d(upload(cols), (6, 7), **params)),
                               PRIMITIVES["fold2d"].forward(cols, input_size=(6, 7), **params),
                               rtol=1e-6)


def _fused(shape: tuple, axes: tuple | None) -> tuple[Fused, list[np.ndarray]]:
    """exp(x * s + b) for x of ``shape`` and a bias broadcast along the rows, optionally summed
    over trailing ``axes``: a group with a broadcast input, a constant and a reduction."""
    x, b = fresh(Spec(shape, np.dtype(np.float32))), fresh(Spec(shape[-1:], np.dtype(np.float32)))
    s = fresh(Spec((), np.dtype(np.float32)))
    t1, t2, t3 = (fresh(Spec(shape, np.dtype(np.float32))) for _ in range(3))
    nodes = (Node("mul", (x, s), {}, t1), Node("add", (t1, b), {}, t2), Node("exp", (t2,), {}, t3))
    body = Graph((x, b), nodes, (t3,), {s: np.float32(0.5)})
    rng = np.random.default_rng(0)
    return Fused(body, axes, False, "sum") if axes else Fused(body), [
        rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape[-1:]).astype(np.float32)]


@pytest.mark.parametrize("strategy", ["threads", "rows"])
@pytest.mark.parametrize("axes", [None, (1,), (0, 1)])
def test_fused_groups_run_as_one_generated_kernel(axes: tuple | None, strategy: str) -> None:
    fused, (x, b) = _fused((3, 40), axes)
    want = np.exp(x * np.float32(0.5) + b)
    want = want.sum(axis=axes) if axes else want
    kernel = CudaFusedKernel(fused)
    got = kernel(upload(x), upload(b), strategy=strategy if axes else None)
    np.testing.assert_allclose(download(got), want, rtol=1e-5)
    source = generate_cuda_source(fused, rows=strategy == "rows" and bool(axes))
    assert "exp(" in source and "x0 = a0[" in source and "x2 = a2" in source  # const: an argument
    assert ("cuda.syncthreads()" in source) == (strategy == "rows" and bool(axes))


def test_cuda_and_cpu_code_generators_share_the_registry_lowering() -> None:
    """exp(x + b) * x summed over rows: each generator computes an element with the same
    statements (the primitives' scalar templates) and accumulates with the same combine."""
    f32 = np.dtype(np.float32)
    x, b = fresh(Spec((3, 40), f32)), fresh(Spec((40,), f32))
    t = [fresh(Spec((3, 40), f32)) for _ in range(3)]
    nodes = (Node("add", (x, b), {}, t[0]), Node("exp", (t[0],), {}, t[1]),
             Node("mul", (t[1], x), {}, t[2]))
    fused = Fused(Graph((x, b), nodes, (t[2],)), (1,), False, "sum")

    def statements(source: str) -> list[str]:
        return [line.strip() for line in source.splitlines() if re.match(r"\s*t\d+ = ", line)]

    cuda_source, cpu_source = generate_cuda_source(fused), generate_source(fused)
    assert statements(cuda_source) == statements(cpu_source) == [
        "t0 = (x0 + x1)", "t1 = exp(t0)", "t2 = (t1 * x0)"]
    accumulate = PRIMITIVES["sum"].reduction.combine.format("acc", "\0").split("\0")[0]
    assert f"acc = {accumulate}t2" in cuda_source and f"acc = {accumulate}" in cpu_source


def test_compiled_graph_keeps_its_memory_plan_on_the_device(rng: np.random.Generator) -> None:
    def f(x, w):
        h = (x @ w).relu()
        return ((h * 2.0 + 1.0).tanh() * h).sum(1)

    x = mlsys.tensor(rng.standard_normal((4, 6), dtype=np.float32)).to("cuda")
    w = mlsys.tensor(rng.standard_normal((6, 5), dtype=np.float32)).to("cuda")
    compiled = mlsys.compile(f)
    want = f(x.to("cpu"), w.to("cpu")).numpy()
    compiled(x, w)  # traces
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback anywhere
        out = compiled(x, w)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5)
    exe = compiled.cache[next(iter(compiled.cache))][0].executable
    assert isinstance(exe, CudaExecutable)
    fused = [n.fused for n in exe.graph.nodes if n.fused is not None]
    assert [(f.reduces, f.reduce_op) for f in fused] == [(True, "sum")]  # relu ... sum: one kernel
    held = exe.device_bytes
    assert held > 0  # the intermediates' buffers, allocated on the first run
    mallocs, moved = ALLOCATOR.stats.device_mallocs, []
    for _ in range(2):
        with count_transfers() as t:
            compiled(x, w)
        moved.append(t.count)
    assert exe.device_bytes == held and moved == [0, 0]
    assert ALLOCATOR.stats.device_mallocs == mallocs  # the result's block comes from the cache
