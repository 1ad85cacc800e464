"""Int8 quantization and the int8 matrix multiply behind it.

Symmetric linear quantization maps a float ``x`` to ``q = clip(round(x / s), -127, 127)`` with
scale ``s = max|x| / 127``, per tensor or per output channel (one scale per row of a weight
matrix). A product of two quantized operands is computed exactly in integers, with int32
accumulation, and dequantized once: ``y[i, j] = s_x * s_w[j] * sum_p qx[i, p] * qw[j, p]``
(Jacob et al., *Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference*, CVPR 2018). The kernel is Numba: four rows of A against two rows of W (the weight is
already stored transposed, as ``nn.Linear`` keeps it: out x in), eight int32 sums in registers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["quantize_per_tensor", "quantize_per_channel", "quantize_rows", "dequantize",
           "int8_matmul"]

QMAX = 127


def _scale(amax: np.ndarray | float) -> np.ndarray:
    amax = np.asarray(amax, dtype=np.float32)
    return np.where(amax > 0, amax / QMAX, np.float32(1.0)).astype(np.float32)


def _check_float(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{what}: expected a float array, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: cannot quantize NaN or infinity")
    return x


def quantize_per_tensor(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """``(q, scale)``: int8 values and one float32 scale for the whole tensor."""
    x = _check_float(x, "quantize_per_tensor")
    scale = _scale(np.abs(x).max() if x.size else 0.0)
    return np.clip(np.rint(x / scale), -QMAX, QMAX).astype(np.int8), np.float32(scale)


def quantize_per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q, scales)`` for a 2-D weight (out, in): one scale per output row."""
    w = _check_float(w, "quantize_per_channel")
    if w.ndim != 2:
        raise ValueError(f"quantize_per_channel: expected a 2-D (out, in) weight, got shape {w.shape}")
    scales = _scale(np.abs(w).max(axis=1))
    return np.clip(np.rint(w / scales[:, None]), -QMAX, QMAX).astype(np.int8), scales


quantize_rows = quantize_per_channel  # activations: one scale per row (per example)


def dequantize(q: np.ndarray, scale: np.ndarray | float, axis: int = 0) -> np.ndarray:
    """Float32 values of ``q`` (int8) under ``scale`` (a scalar, or one per index of ``axis``)."""
    scale = np.asarray(scale, dtype=np.float32)
    if scale.ndim:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
    return q.astype(np.float32) * scale


@njit(cache=True)
def _gemm(a, w, out):
    """out (n, m) int32 = a (n, k) int8 @ w (m, k)^T: one contiguous dot product per output.

    Written as the plainest loop on purpose: LLVM recognises the widening multiply-accumulate
    and vectorizes it (``vpmaddwd``, or ``vpdpwssd`` on CPUs with VNNI); hand-unrolled register
    blocking hides that pattern and runs slower. One thread: a server's replicas are its
    parallelism, and a parallel region stalls whenever another process holds a core.
    """
    for i in range(a.shape[0]):
        ai = a[i]
        for j in range(w.shape[0]):
            wj = w[j]
            s = np.int32(0)
            for p in range(ai.shape[0]):
                s += np.int32(ai[p]) * np.int32(wj[p])
            out[i, j] = s


def int8_matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a @ w.T`` in int32 for int8 ``a`` (n, k) and ``w`` (m, k): exact integer products."""
    if a.dtype != np.int8 or w.dtype != np.int8:
        raise TypeError(f"int8_matmul: expected int8 operands, got {a.dtype} and {w.dtype}")
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[1]:
        raise ValueError(f"int8_matmul: expected (n, k) and (m, k), got {a.shape} and {w.shape}")
    if a.shape[1] >= 1 << 17:  # 127 * 127 * k must stay below 2**31
        raise ValueError(f"int8_matmul: k = {a.shape[1]} could overflow int32 accumulation")
    out = np.empty((a.shape[0], w.shape[0]), np.int32)
    _gemm(np.ascontiguousarray(a), np.ascontiguousarray(w), out)
    return out
