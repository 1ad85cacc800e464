"""Smaller and faster models for serving: quantization, lower precision, pruning.

* :mod:`~mlsys.compress.int8` — symmetric int8 quantization (per tensor, per channel) and a Numba
  int8 matmul with int32 accumulation;
* :mod:`~mlsys.compress.layers` — drop-in inference layers (int8, float16, emulated bfloat16) and
  the rewrite that swaps them into a trained model;
* :mod:`~mlsys.compress.mixed_precision` — float16 training with float32 master weights and
  dynamic loss scaling;
* :mod:`~mlsys.compress.prune` — magnitude pruning and sparse sizes;
* :mod:`~mlsys.compress.compare` — all of them side by side on a digits model.
"""

from .int8 import dequantize, int8_matmul, quantize_per_channel, quantize_per_tensor
from .layers import LowPrecisionLinear, QuantizedLinear, model_bytes, replace_linear, round_to_bfloat16
from .mixed_precision import GradScaler, autocast_forward, mixed_precision_step, underflow_fraction
from .prune import apply_masks, csr_bytes, magnitude_prune, sparsity

__all__ = ["quantize_per_tensor", "quantize_per_channel", "dequantize", "int8_matmul",
           "QuantizedLinear", "LowPrecisionLinear", "round_to_bfloat16", "replace_linear",
           "model_bytes", "GradScaler", "autocast_forward", "mixed_precision_step",
           "underflow_fraction", "magnitude_prune", "apply_masks", "sparsity", "csr_bytes"]
