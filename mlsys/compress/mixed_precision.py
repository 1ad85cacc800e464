"""Mixed-precision training with loss scaling (Micikevicius et al., *Mixed Precision Training*,
ICLR 2018), on the engine's own autodiff.

The recipe: keep float32 *master* weights; run each layer's matmul with its weight and input cast
to float16 (the ``cast`` primitive, whose VJP casts the gradient back, so the backward pass is in
float16 too); compute the loss in float32. Small gradients underflow to zero in float16 (below
about 6e-8), so the loss is multiplied by a scale ``S`` before ``backward()`` and the float32
gradients divided by ``S`` before the update. :class:`GradScaler` picks ``S`` dynamically, as
PyTorch's ``torch.amp.GradScaler`` does: halve it and skip the step when a gradient overflows,
double it after ``growth_interval`` steps without overflow.
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from ..nn import functional as F
from ..optim import Optimizer
from ..tensor import Tensor

__all__ = ["GradScaler", "autocast_forward", "mixed_precision_step", "underflow_fraction"]


class GradScaler:
    """Dynamic loss scaling: ``scale(loss).backward(); scaler.step(optimizer); scaler.update()``."""

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000) -> None:
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"GradScaler: init_scale must be a positive number, got {init_scale!r}")
        if not growth_factor > 1 or not 0 < backoff_factor < 1:
            raise ValueError(f"GradScaler: need growth_factor > 1 and 0 < backoff_factor < 1, got "
                             f"{growth_factor!r}, {backoff_factor!r}")
        if not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be a positive integer, "
                             f"got {growth_interval!r}")
        self._scale = float(init_scale)
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval = growth_interval
        self._good_steps = 0
        self._found_inf = False
        self.skipped = 0

    def get_scale(self) -> float:
        return self._scale

    def scale(self, loss: Tensor) -> Tensor:
        """``loss * S``: backpropagate this instead of the loss."""
        return loss * self._scale

    def step(self, optimizer: Optimizer) -> bool:
        """Unscale the gradients; update unless one is infinite or NaN. Returns whether it stepped."""
        self._found_inf = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data.astype(np.float32) / np.float32(self._scale)
                if not np.isfinite(grad).all():
                    self._found_inf = True
                p.grad = Tensor(grad)
        if self._found_inf:
            self.skipped += 1
            return False
        optimizer.step()
        return True

    def update(self) -> None:
        """Back off after an overflow; grow after ``growth_interval`` clean steps."""
        if self._found_inf:
            self._scale *= self.backoff_factor
            self._good_steps = 0
        else:
            self._good_steps += 1
            if self._good_steps == self.growth_interval:
                self._scale *= self.growth_factor
                self._good_steps = 0


def autocast_forward(model: nn.Sequential, x: Tensor, dtype: str = "float16") -> Tensor:
    """Run ``model`` with every Linear/Conv2d computed in ``dtype`` from float32 master weights;
    returns float32 outputs (the loss is computed in float32, as autocast does)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"autocast_forward: expected an nn.Sequential, got {type(model).__name__}")
    h = x
    for layer in model:
        if isinstance(layer, nn.Linear):
            h = F.linear(h.to(dtype), layer.weight.to(dtype),
                         None if layer.bias is None else layer.bias.to(dtype))
        elif isinstance(layer, nn.Conv2d):
            h = F.conv2d(h.to(dtype), layer.weight.to(dtype),
                         None if layer.bias is None else layer.bias.to(dtype), layer.stride, layer.padding)
        else:
            h = layer(h)
    return h.to("float32")


def mixed_precision_step(model: nn.Sequential, optimizer: Optimizer, x: Tensor, y: Tensor,
                         scaler: GradScaler | None = None, dtype: str = "float16") -> float:
    """One training step in ``dtype`` with (or, ``scaler=None``, without) loss scaling."""
    optimizer.zero_grad()
    loss = F.cross_entropy(autocast_forward(model, x, dtype), y)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return float(loss.item())


def underflow_fraction(gradient: np.ndarray, scale: float = 1.0, dtype: str = "float16") -> float:
    """Share of the non-zero entries of a float32 ``gradient`` that become zero in ``dtype``
    after multiplying by ``scale`` (what loss scaling rescues)."""
    g = np.asarray(gradient, dtype=np.float64)
    nonzero = g != 0
    if not nonzero.any():
        return 0.0
    flushed = (g * scale).astype(dtype) == 0
    return float((flushed & nonzero).sum() / nonzero.sum())
