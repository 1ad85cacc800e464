"""The MLP and the CNN train on the "cuda" device with no fallback, eagerly and compiled, as on
the CPU; each step moves only its batch to the device and its loss back.

Tiny models and batches: without a GPU the kernels run in Numba's CUDA simulator.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

import mlsys
from mlsys import nn, optim
from mlsys.data import load_digits
from mlsys.kernels import to_device
from mlsys.kernels.cuda.memory import DeviceArray, count_transfers
from mlsys.models import mlp, small_cnn

STEPS = 3
MODELS = {"mlp": (lambda: mlp(64, 8, 10), (-1, 64)), "cnn": (lambda: small_cnn(2), (-1, 1, 8, 8))}
OPTIMIZERS = {"sgd": lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9),
              "adam": lambda ps: optim.Adam(ps, lr=1e-2)}


def _train(model_name: str, opt_name: str, device: str, compiled: bool = False):
    """Losses, per-step transfers and final parameters of a few steps on one small batch."""
    make, shape = MODELS[model_name]
    x, y = load_digits("train")[:4]
    x = x.reshape(shape)
    mlsys.manual_seed(0)
    model = to_device(make(), device)
    opt = OPTIMIZERS[opt_name](model.parameters())

    def step(xb: mlsys.Tensor, yb: mlsys.Tensor) -> mlsys.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    run: Callable = mlsys.compile(step) if compiled else step
    losses, moved = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the numpy reference would fail the test
        for _ in range(STEPS):
            with count_transfers() as t:
                xb, yb = mlsys.tensor(x).to(device), mlsys.tensor(y).to(device)
                losses.append(run(xb, yb).item())
            moved.append(t.value)
    params = list(model.parameters())
    if device == "cuda":
        assert all(isinstance(p._data, DeviceArray) for p in params)
    return losses, moved, [p.detach().to("cpu").numpy() for p in params], (x, y)


@pytest.mark.parametrize("model_name,opt_name,compiled", [
    ("mlp", "sgd", False), ("mlp", "adam", False), ("mlp", "adam", True),
    ("cnn", "adam", False), ("cnn", "sgd", True)])
def test_training_on_cuda_matches_the_cpu_and_moves_only_batch_and_loss(
        model_name: str, opt_name: str, compiled: bool) -> None:
    ref_losses, _, ref_params, _ = _train(model_name, opt_name, "cpu")
    losses, moved, params, (x, y) = _train(model_name, opt_name, "cuda", compiled)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-5)
    last = moved[-1]  # compiled: the first steps trace (and read constants made on the device)
    assert (last.to_device, last.to_device_bytes) == (2, x.astype(np.float32).nbytes + y.nbytes)
    assert (last.to_host, last.to_host_bytes) == (1, 4)  # the loss, float32
