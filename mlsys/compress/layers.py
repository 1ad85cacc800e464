"""Inference-only layers that replace ``nn.Linear`` in a trained model, and the rewrite that does it.

* :class:`QuantizedLinear` — int8 weights (per-tensor or per-channel scales), activations
  quantized per tensor on the fly, the int8 kernel with int32 accumulation, one dequantize;
* :class:`LowPrecisionLinear` — weights and activations in float16 (numpy's real half type) or
  bfloat16 (emulated: float32 storage rounded to bfloat16's 8-bit mantissa, fp32 accumulation,
  which is what a tensor core does with bf16 inputs).

Their outputs carry no gradient: they are for serving a trained model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import nn
from ..tensor import Tensor
from .int8 import int8_matmul, quantize_per_channel, quantize_per_tensor

__all__ = ["QuantizedLinear", "LowPrecisionLinear", "round_to_bfloat16", "replace_linear",
           "model_bytes"]


class QuantizedLinear(nn.Module):
    """``y = dequant(int8(x) @ int8(W)^T) + b``, with per-channel or per-tensor weight scales."""

    def __init__(self, linear: nn.Linear, per_channel: bool = True) -> None:
        super().__init__()
        w = linear.weight.data.astype(np.float32)
        if per_channel:
            self.qweight, self.scale = quantize_per_channel(w)
        else:
            q, s = quantize_per_tensor(w)
            self.qweight, self.scale = q, np.full(w.shape[0], s, np.float32)
        self.bias = None if linear.bias is None else linear.bias.data.astype(np.float32).copy()
        self.per_channel = per_channel

    def forward(self, x: Tensor) -> Tensor:
        data = x.data.reshape(-1, x.shape[-1])
        qx, sx = quantize_per_tensor(data.astype(np.float32, copy=False))
        y = int8_matmul(qx, self.qweight).astype(np.float32) * (sx * self.scale)
        if self.bias is not None:
            y += self.bias
        return Tensor(y.reshape(*x.shape[:-1], -1))

    def nbytes(self) -> int:
        return self.qweight.nbytes + self.scale.nbytes + (self.bias.nbytes if self.bias is not None else 0)

    def extra_repr(self) -> str:
        scales = "channel" if self.per_channel else "tensor"
        return f"{self.qweight.shape[1]}, {self.qweight.shape[0]}, int8 per-{scales}"


def round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """The nearest bfloat16 value of each float32 (ties to even), stored as float32.

    bfloat16 keeps float32's sign and 8 exponent bits and the top 7 mantissa bits, so rounding
    is integer arithmetic on the bit pattern; NaN stays NaN.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    rounded = ((bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) & np.uint32(0xFFFF0000))
    return np.where(np.isnan(x), x, rounded.view(np.float32))


class LowPrecisionLinear(nn.Module):
    """A linear layer computed in ``"float16"`` or ``"bfloat16"`` (see the module docstring)."""

    def __init__(self, linear: nn.Linear, dtype: str) -> None:
        super().__init__()
        if dtype not in ("float16", "bfloat16"):
            raise ValueError(f"LowPrecisionLinear: dtype must be 'float16' or 'bfloat16', got {dtype!r}")
        self.dtype = dtype
        self.weight_t = self._cast(linear.weight.data.T)  # (in, out), stored as it is multiplied
        self.bias = None if linear.bias is None else self._cast(linear.bias.data)

    def _cast(self, x: np.ndarray) -> np.ndarray:
        if self.dtype == "float16":
            return np.ascontiguousarray(x, dtype=np.float16)
        return round_to_bfloat16(x)

    def forward(self, x: Tensor) -> Tensor:
        y = self._cast(x.data) @ self.weight_t
        if self.bias is not None:
            y = y + self.bias
        return Tensor(self._cast(y).astype(np.float32))

    def nbytes(self) -> int:
        """Bytes in the stored format (bfloat16 counts 2 per value, as real storage would)."""
        values = self.weight_t.size + (self.bias.size if self.bias is not None else 0)
        return 2 * values

    def extra_repr(self) -> str:
        return f"{self.weight_t.shape[0]}, {self.weight_t.shape[1]}, {self.dtype}"


def replace_linear(model: nn.Module, make: Callable[[nn.Linear], nn.Module]) -> nn.Sequential:
    """A new Sequential with every ``nn.Linear`` of ``model`` (a Sequential, possibly nested)
    replaced by ``make(linear)``; other layers are shared, not copied."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"replace_linear: expected an nn.Sequential, got {type(model).__name__}")
    layers = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            layers.append(make(layer))
        elif isinstance(layer, nn.Sequential):
            layers.append(replace_linear(layer, make))
        else:
            layers.append(layer)
    return nn.Sequential(*layers).eval()


def model_bytes(model: nn.Module) -> int:
    """Bytes of a model's weights as stored: parameters, plus compressed layers' own storage."""
    total = 0
    for module in model.modules():
        if hasattr(module, "nbytes") and not isinstance(module, nn.Sequential):
            total += module.nbytes()
        else:
            total += sum(p.data.nbytes for p in module._parameters.values() if p is not None)
    return total
