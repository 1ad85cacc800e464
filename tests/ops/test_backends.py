"""Every primitive on every backend against the numpy reference, forward and gradient.

The matrix minitorch and PyTorch's OpInfo tests keep: each primitive (one example application
from ``op_examples``) runs on the ``numba`` and ``cuda`` devices (CUDA under Numba's simulator
when there is no GPU; the examples are tiny) and compiled by ``mlsys.compile``; its output must
match ``Primitive.forward`` on numpy arrays and its input gradients must match the eager CPU
ones. Every elementwise template is also compiled alone by the fused-kernel code generators
(Numba CPU and numba-cuda).
Nothing here names a primitive: adding one to the registry adds it to every backend's row.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from op_examples import EXAMPLES

import mlsys
from mlsys.graph.codegen import compile_fused
from mlsys.graph.codegen_cuda import CudaFusedKernel
from mlsys.graph.ir import Fused, Graph, Node, fresh
from mlsys.kernels import to_device
from mlsys.ops import PRIMITIVES, Spec

DEVICES = ["numba", "cuda"]
NAMES = sorted(PRIMITIVES)


def _inputs(name: str, device: str = "cpu") -> list[mlsys.Tensor]:
    """The example's arrays as leaves on ``device``; floating-point ones require grad."""
    arrays, _ = EXAMPLES[name]
    prim = PRIMITIVES[name]
    out = []
    for x in arrays:
        t = mlsys.Tensor(np.array(x, copy=True))
        if prim.vjp is not None and t.is_floating_point():
            t.requires_grad_()
        out.append(to_device([t], device)[0] if device != "cpu" else t)
    return out


def _cotangent(name: str) -> np.ndarray:
    arrays, params = EXAMPLES[name]
    spec = PRIMITIVES[name].shape(*[Spec.of(x) for x in arrays], **params)
    return np.random.default_rng(1).standard_normal(spec.shape).astype(spec.dtype)


def _run(name: str, device: str) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Forward on ``device``, then the gradient of <cotangent, output> for each input."""
    _, params = EXAMPLES[name]
    inputs = _inputs(name, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks to the reference are noted, and fine here
        mlsys.manual_seed(0)
        out = PRIMITIVES[name](*inputs, **params)
        assert out.device == (device if inputs else "cpu")  # a nullary op has no device to follow
        if out.requires_grad:
            out.backward(mlsys.tensor(_cotangent(name)))
    grads = []
    for x in inputs:
        assert x.grad is None or x.grad.device == device
        grads.append(None if x.grad is None else x.grad.data)
    return out.data, grads


def _compare(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    if not PRIMITIVES[name].pure:  # a fresh random draw: other values of the same kind
        assert got.shape == expected.shape and got.dtype == expected.dtype and np.isfinite(got).all()
        return
    assert got.shape == expected.shape and got.dtype == expected.dtype, name
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6, err_msg=name)


def _reference(name: str) -> np.ndarray:
    arrays, params = EXAMPLES[name]
    mlsys.manual_seed(0)
    spec = PRIMITIVES[name].shape(*[Spec.of(x) for x in arrays], **params)
    return np.asarray(PRIMITIVES[name].forward(*arrays, **params)).astype(spec.dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_device_matches_the_reference(name: str, device: str) -> None:
    out, grads = _run(name, device)
    _compare(name, out, _reference(name))
    _, expected_grads = _run(name, "cpu")
    for got, expected in zip(grads, expected_grads):
        assert (got is None) == (expected is None), name
        if got is not None:
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("name", NAMES)
def test_compiled_matches_the_reference(name: str, device: str) -> None:
    """``mlsys.compile`` of the forward and its VJP, checked on the call that runs the graph
    (on "cuda", the graph runs on device arrays with generated CUDA kernels)."""
    prim, (_, params) = PRIMITIVES[name], EXAMPLES[name]
    inputs = _inputs(name, device)
    wrt = [x for x in inputs if x.requires_grad]
    cotangent = mlsys.tensor(_cotangent(name)).to(device)

    def forward_and_vjp(*xs):
        out = prim(*xs, **params)
        if not out.requires_grad:
            return out
        grads = mlsys.autograd.grad(out, [x for x in xs if x.requires_grad], cotangent,
                                    allow_unused=True)
        return (out, *(g for g in grads if g is not None))

    compiled = mlsys.compile(forward_and_vjp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks to the reference are noted, and fine here
        compiled(*inputs)  # traces (and runs eagerly)
        results = compiled(*inputs)  # runs the optimized graph
    results = results if isinstance(results, tuple) else (results,)
    _compare(name, results[0].data, _reference(name))
    _, expected_grads = _run(name, "cpu")
    expected = [g for g in expected_grads if g is not None]
    assert len(results) - 1 == len(expected) <= len(wrt)
    for got, want in zip(results[1:], expected):
        np.testing.assert_allclose(got.data, want, rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("generator", [compile_fused, CudaFusedKernel])
@pytest.mark.parametrize("name", sorted(n for n, p in PRIMITIVES.items() if p.elementwise))
def test_every_template_compiles_as_a_fused_kernel(name: str, generator) -> None:
    arrays, params = EXAMPLES[name]
    ins = [fresh(Spec.of(x)) for x in arrays]
    spec = PRIMITIVES[name].shape(*(v.spec for v in ins), **params)
    out = fresh(Spec(np.broadcast_shapes(*(x.shape for x in arrays)), spec.dtype))
    body = Graph(tuple(ins), (Node(name, tuple(ins), params, out),), (out,))
    kernel = generator(Fused(body))
    _compare(name, np.asarray(kernel(*arrays)), _reference(name))


def test_maximum_and_max_keep_nan_on_every_device() -> None:
    x = mlsys.tensor(np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32))
    y = mlsys.tensor(np.array([np.nan, 0.0, 9.0], np.float32))
    for device in ["cpu", *DEVICES]:
        a, b = x.to(device), y.to(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_array_equal(mlsys.maximum(a, b).data, [[np.nan, np.nan, 9], [np.nan, 5, 9]])
            np.testing.assert_array_equal(mlsys.maximum(b, a).data, [[np.nan, np.nan, 9], [np.nan, 5, 9]])
            np.testing.assert_array_equal(a.amax(1).data, [np.nan, 6.0])
            np.testing.assert_array_equal(a.amin(0).data, [1.0, np.nan, 3.0])
            assert np.isnan(a.max().item())


def test_cuda_math_follows_ieee() -> None:
    """log(0), log(-1) and overflow give -inf, NaN and inf (under the simulator as on a GPU)."""
    x = mlsys.tensor(np.array([0.0, -1.0, 100.0], np.float32)).to("cuda")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(x.log().data[:2], [-np.inf, np.nan])
        assert np.isinf(x.exp().data[2]) and np.isinf((x / 0.0).data[2])
        assert np.isnan((x.sqrt()).data[1])
