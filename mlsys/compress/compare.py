"""Every compression of one trained digits model, side by side: accuracy, bytes and latency.

Latency is one forward pass over a batch, each variant timed in alternating rounds next to the
float32 model in the same process (so load from other processes lands on all of them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from .. import nn, optim
from ..autograd import no_grad
from ..bench.report import time_side_by_side
from ..data import DataLoader, load_digits
from ..serve import models
from ..tensor import Tensor
from ..training import train_step
from .layers import LowPrecisionLinear, QuantizedLinear, model_bytes, replace_linear
from .prune import apply_masks, csr_bytes, magnitude_prune

__all__ = ["variants", "compression_table"]


def _copy(name: str, model: nn.Module) -> nn.Module:
    clone = models.model_spec(name).build()
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def _pruned(name: str, model: nn.Module, amount: float, finetune_epochs: int = 0) -> nn.Module:
    """A pruned copy, optionally fine-tuned with the pruned weights held at zero."""
    clone = _copy(name, model)
    masks = magnitude_prune(clone, amount)
    if finetune_epochs:
        spec = models.model_spec(name)
        clone.train()
        optimizer = optim.Adam(clone.parameters(), lr=spec.lr / 3)
        loader = DataLoader(load_digits("train", flatten=not spec.image_input), 64, shuffle=True)
        for _ in range(finetune_epochs):
            for x, y in loader:
                train_step(clone, optimizer, x, y)
                apply_masks(clone, masks)
    return clone.eval()


def variants(name: str, model: nn.Module) -> dict[str, tuple[nn.Module, int]]:
    """Compressed versions of ``model`` (a trained ``name``) and their stored bytes."""
    built: dict[str, Callable[[], nn.Module]] = {
        "float32": lambda: model,
        "float16": lambda: replace_linear(model, lambda lin: LowPrecisionLinear(lin, "float16")),
        "bfloat16 (emulated)": lambda: replace_linear(model, lambda lin: LowPrecisionLinear(lin, "bfloat16")),
        "int8 per-tensor": lambda: replace_linear(model, lambda lin: QuantizedLinear(lin, False)),
        "int8 per-channel": lambda: replace_linear(model, lambda lin: QuantizedLinear(lin, True)),
        "pruned 50%": lambda: _pruned(name, model, 0.5),
        "pruned 90%": lambda: _pruned(name, model, 0.9),
        "pruned 90% + fine-tune": lambda: _pruned(name, model, 0.9, finetune_epochs=2),
    }
    out = {}
    for label, make in built.items():
        variant = make()
        out[label] = (variant, csr_bytes(variant) if label.startswith("pruned") else model_bytes(variant))
    return out


def compression_table(name: str = "digits-mlp", model: nn.Module | None = None, batch: int = 64,
                      rounds: int = 3, threads: int = 1) -> list[dict]:
    """One row per variant: test accuracy, bytes (CSR for pruned), latency for ``batch`` rows
    (None for pruned variants, whose dense product is float32's)."""
    model = model if model is not None else models.train(name)
    spec = models.model_spec(name)
    test = load_digits("test")
    x_all, y_all = test.arrays
    shape = (-1, 1, 8, 8) if spec.image_input else (-1, 64)
    built = variants(name, model)
    xb = Tensor(np.ascontiguousarray(x_all[:batch].reshape(shape)))

    def accuracy(net: nn.Module) -> float:
        with no_grad():
            return float((net(Tensor(x_all.reshape(shape))).data.argmax(1) == y_all).mean())

    def forward(net: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with no_grad():
                net(xb)
        return run

    # a pruned model runs the same dense product as float32: timing it would only measure noise
    timed = [label for label in built if not label.startswith("pruned")]
    with threadpool_limits(threads):
        times = dict(zip(timed, time_side_by_side([forward(built[label][0]) for label in timed],
                                                  rounds=rounds)))
    base_bytes, base_time = built["float32"][1], times["float32"]
    return [{"variant": label, "accuracy": accuracy(net), "kilobytes": nbytes / 1024,
             "size_vs_fp32": nbytes / base_bytes,
             f"latency_us_batch{batch}": times[label] * 1e6 if label in times else None,
             "speedup_vs_fp32": base_time / times[label] if label in times else None}
            for label, (net, nbytes) in built.items()]
