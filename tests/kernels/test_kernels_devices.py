"""Tensors on the "numba" and "cuda" devices run those kernels and train like the reference."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import mlsys
from mlsys import optim
from mlsys.data import load_digits
from mlsys.kernels import to_device
from mlsys.models import mlp
from mlsys.ops.registry import PRIMITIVES
from mlsys.training import train_step


@functools.cache
def _train(device: str, steps: int = 2) -> tuple[list[float], list[np.ndarray]]:
    """A few SGD steps of a small MLP on a small digits batch (small: CUDA may be simulated)."""
    x, y = load_digits("train")[:4]
    mlsys.manual_seed(0)
    model = to_device(mlp(64, 8, 10), device)
    opt = optim.SGD(model.parameters(), lr=0.5)
    xt, yt = mlsys.tensor(x).to(device), mlsys.tensor(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallback notes are tested below
        losses = [train_step(model, opt, xt, yt) for _ in range(steps)]
    return losses, [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("device", ["numba", "cuda"])
def test_mlp_trains_the_same_on_each_device(device: str) -> None:
    ref_losses, ref_params = _train("cpu")
    losses, params = _train(device)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-5)


def test_device_runs_its_kernel(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    a = mlsys.tensor(rng.standard_normal((5, 3), dtype=np.float32)).to("numba")
    b = mlsys.tensor(rng.standard_normal((3, 4), dtype=np.float32))
    calls = []
    kernel = PRIMITIVES["matmul"].impls["numba"]
    monkeypatch.setitem(PRIMITIVES["matmul"].impls, "numba",
                        lambda *args: calls.append(1) or kernel(*args))
    out = a @ b
    assert calls == [1] and out.device == "numba"
    np.testing.assert_allclose(out.data, a.data @ b.data, rtol=1e-5)


def test_fallback_is_noted_once() -> None:
    x = mlsys.tensor(np.arange(4, dtype=np.int64)).to("numba")  # the ufuncs take floats only
    with pytest.warns(UserWarning, match="add on device 'numba': its kernel does not take"):
        y = x + x
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x + x
    np.testing.assert_array_equal(y.data, [0, 2, 4, 6])


def test_device_errors() -> None:
    a = mlsys.tensor(np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"to\('tpu'\): expected a numpy dtype or a device \(cpu, "):
        a.to("tpu")
    with pytest.raises(RuntimeError, match="different devices, 'numba' and 'cuda'"):
        a.to("numba") + a.to("cuda")
    b = mlsys.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="move leaf tensors"):
        (b * 2).to("numba")


def test_moved_leaf_keeps_requires_grad_and_gradients_match() -> None:
    x = mlsys.tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    y = x.to("numba")
    assert y.requires_grad and y.is_leaf and y.device == "numba"
    assert "device='numba'" in repr(y) and "device" not in repr(x)
    y.softmax(1).sum().backward()
    x.softmax(1).sum().backward()
    np.testing.assert_allclose(y.grad.data, x.grad.data, atol=1e-6)


@pytest.mark.parametrize("device", ["numba", "cuda"])
def test_clone_and_gradients_stay_on_the_device(device: str) -> None:
    x = mlsys.tensor(np.array([1.0, -2.0, 3.0], np.float32), requires_grad=True).to(device)
    y = x.clone()
    assert y.device == device and y.grad_fn == "copy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (y * y).sum().backward()
    assert x.grad.device == device
    np.testing.assert_allclose(x.grad.data, [2.0, -4.0, 6.0])
    assert x.detach().device == device and x.detach().clone().device == device
