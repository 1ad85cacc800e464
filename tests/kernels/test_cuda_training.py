"""The MLP and the CNN train on the "cuda" device with no fallback, eagerly and compiled, as on
the CPU; each step moves only its batch to the device and its loss back. A transformer block
(embedding, attention, layer norm, GELU) trains too, with no fallback, bringing back only its loss.

Tiny models and batches: without a GPU the kernels run in Numba's CUDA simulator.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable

import numpy as np
import pytest

import mlsys
from mlsys import nn, optim
from mlsys.data import load_digits
from mlsys.graph import TrainStep
from mlsys.graph.executor_cuda import CudaExecutable
from mlsys.kernels import to_device
from mlsys.kernels.cuda.memory import DeviceArray, count_transfers
from mlsys.models import mlp, small_cnn
from mlsys.nn.attention import TransformerBlock
from mlsys.ops import PRIMITIVES

STEPS = 3
MODELS = {"mlp": (lambda: mlp(64, 8, 10), (-1, 64)), "cnn": (lambda: small_cnn(2), (-1, 1, 8, 8))}
OPTIMIZERS = {"sgd": lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9),
              "adam": lambda ps: optim.Adam(ps, lr=1e-2)}


@pytest.fixture
def graph_runs(monkeypatch: pytest.MonkeyPatch) -> list[CudaExecutable]:
    """The compiled graphs run on the device, one entry per run."""
    runs: list[CudaExecutable] = []
    call = CudaExecutable.__call__

    def counted(self: CudaExecutable, *arrays: object) -> list:
        runs.append(self)
        return call(self, *arrays)

    monkeypatch.setattr(CudaExecutable, "__call__", counted)
    return runs


def _train(model_name: str, opt_name: str, device: str, compiled: bool = False,
           graph_runs: list | None = None):
    """Losses, per-step transfers (and whether the step ran a compiled graph on the device, when
    ``graph_runs`` counts them) and final parameters of a few steps on one small batch."""
    make, shape = MODELS[model_name]
    x, y = load_digits("train")[:4]
    x = x.reshape(shape)
    mlsys.manual_seed(0)
    model = to_device(make(), device)
    step = TrainStep(model, OPTIMIZERS[opt_name](model.parameters()))
    run: Callable = mlsys.compile(step) if compiled else step
    losses, moved, ran = [], [], []
    runs = [] if graph_runs is None else graph_runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the numpy reference would fail the test
        for _ in range(STEPS):
            before = len(runs)
            with count_transfers() as t:
                xb, yb = mlsys.tensor(x).to(device), mlsys.tensor(y).to(device)
                losses.append(run(xb, yb).item())
            moved.append(t.value)
            ran.append(len(runs) > before)
    params = list(model.parameters())
    if device == "cuda":
        assert all(isinstance(p._data, DeviceArray) for p in params)
    return losses, (moved, ran), [p.detach().to("cpu").numpy() for p in params], (x, y)


@pytest.mark.parametrize("model_name,opt_name,compiled", [
    ("mlp", "sgd", False), ("mlp", "adam", False), ("mlp", "adam", True),
    ("cnn", "adam", False), ("cnn", "sgd", True)])
def test_training_on_cuda_matches_the_cpu_and_moves_only_batch_and_loss(
        model_name: str, opt_name: str, compiled: bool, graph_runs: list[CudaExecutable]) -> None:
    ref_losses, _, ref_params, _ = _train(model_name, opt_name, "cpu")
    losses, (moved, ran), params, (x, y) = _train(model_name, opt_name, "cuda", compiled, graph_runs)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-5)
    # eager: every step; compiled: the last, which runs the graph (the first steps trace, and
    # read constants made on the device)
    assert ran[-1] if compiled else not any(ran)
    for step in moved if not compiled else moved[-1:]:
        assert (step.to_device, step.to_device_bytes) == (2, x.astype(np.float32).nbytes + y.nbytes)
        assert (step.to_host, step.to_host_bytes) == (1, 4)  # the loss, float32
    if compiled:  # the graph that ran holds fused groups, generated as CUDA kernels
        assert any(n.fused is not None for n in graph_runs[-1].graph.nodes)


def test_a_primitive_falling_back_fails_the_training_check(monkeypatch: pytest.MonkeyPatch) -> None:
    importlib.import_module("mlsys.kernels.cuda.register")  # the kernels, before one is removed
    monkeypatch.delitem(PRIMITIVES["relu"].impls, "cuda")
    with pytest.raises(UserWarning, match="relu on device 'cuda': no kernel"):
        _train("mlp", "sgd", "cuda")


def _language_model_losses(device: str) -> tuple[list[float], list]:
    """Three Adam steps of a tiny causal language model: embedding, attention (softmax, batched
    matmul), layer norm, GELU, cross-entropy."""
    mlsys.manual_seed(0)
    model = to_device(nn.Sequential(nn.Embedding(11, 8), TransformerBlock(8, 2), nn.LayerNorm(8),
                                    nn.Linear(8, 11)), device)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 11, (2, 5)), rng.integers(0, 11, 10)
    losses, moved = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(STEPS):
            with count_transfers() as t:
                opt.zero_grad()
                logits = model(mlsys.tensor(ids).to(device)).reshape(10, 11)
                loss = nn.functional.cross_entropy(logits, mlsys.tensor(targets).to(device))
                loss.backward()
                opt.step()
                losses.append(loss.item())
            moved.append(t.value)
    return losses, moved


def test_a_transformer_block_trains_on_cuda_with_no_fallback() -> None:
    ref, _ = _language_model_losses("cpu")
    losses, moved = _language_model_losses("cuda")
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, ref, rtol=1e-4)
    assert all((t.to_host, t.to_host_bytes) == (1, 4) for t in moved)  # the loss, and nothing else
