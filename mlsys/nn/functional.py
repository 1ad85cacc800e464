"""Stateless neural-network functions (``mlsys.nn.functional``, as ``torch.nn.functional``).

Convolution and pooling are built from the ``unfold2d`` (im2col) primitive and a matmul or a
reduction; losses and normalizations are compositions of primitives, so their gradients come from
the primitives' VJP rules with nothing written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..ops import elementwise as E
from ..ops import nn as NN
from ..ops import shape as S
from ..tensor import Tensor, matmul


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(pair) != 2 or any(not isinstance(n, (int, np.integer)) or n < 0 for n in pair):
        raise ValueError(f"{name} must be a non-negative int or a pair of them, got {v!r}")
    return int(pair[0]), int(pair[1])


def relu(x: Tensor) -> Tensor:
    return E.relu(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return E.gelu(x, approximate=approximate)


def sigmoid(x: Tensor) -> Tensor:
    return E.sigmoid(x)


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return x * E.sigmoid(x)


def tanh(x: Tensor) -> Tensor:
    return E.tanh(x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.log_softmax(dim)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` with weight of shape (out_features, in_features)."""
    out = matmul(x, weight.T)
    return out if bias is None else out + bias


def one_hot(target: Tensor, num_classes: int, dtype: Any = np.float32) -> Tensor:
    return NN.one_hot(target, num_classes=int(num_classes), dtype=np.dtype(dtype))


def cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of (N, C) or (N, C, d1, ...) logits.

    ``target`` holds class indices of shape (N,) or (N, d1, ...) (integers), or class
    probabilities of the logits' shape (floats). ``label_smoothing`` mixes the target with the
    uniform distribution over the C classes. ``mean`` averages over every sample and position.
    """
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: expected (N, C) or (N, C, d1, ...) logits, got shape "
                         f"{logits.shape}")
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    logp = logits.log_softmax(1)
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise TypeError(f"cross_entropy: class-index targets must be integers, and probability "
                            f"targets must have the logits' shape {logits.shape}; got {target.dtype} "
                            f"targets of shape {target.shape}")
        if label_smoothing:
            target = target * (1.0 - label_smoothing) + label_smoothing / logits.shape[1]
        return _reduce(-(logp * target).sum(1), reduction)
    if not label_smoothing:
        return NN.nll_loss(logp, target, reduction=reduction)
    # Smoothing mixes the target with the uniform distribution: (1 - s) * nll + s * mean(-log p).
    losses = NN.nll_loss(logp, target, reduction="none") * (1.0 - label_smoothing) \
        - logp.mean(1) * label_smoothing
    return _reduce(losses, reduction)


def nll_loss(logp: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer targets (N, d...) under (N, C, d...) log-probabilities."""
    return NN.nll_loss(logp, target, reduction=reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` in [0, 1]; each log is clamped
    at -100 and the gradient follows PyTorch's (finite even at p = 0 or 1)."""
    _check_reduction("binary_cross_entropy", reduction)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy: target shape {target.shape} differs from input "
                         f"shape {input.shape}")
    return _reduce(NN.binary_cross_entropy(input, target), reduction)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_reduction("mse_loss", reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) by im2col and one matmul."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d: expected (N, C, H, W) input and (O, C, kh, kw) weight, got "
                         f"{x.shape} and {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight expects "
                         f"{weight.shape[1]} (shapes {x.shape} and {weight.shape})")
    n, _, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    cols = NN.unfold2d(x, kernel_size=(kh, kw), stride=stride, padding=padding)
    out = matmul(weight.reshape(out_ch, -1), cols)  # (N, O, L)
    ho = NN.conv_output_size(h, kh, stride[0], padding[0])
    wo = NN.conv_output_size(w, kw, stride[1], padding[1])
    out = out.reshape(n, out_ch, ho, wo)
    return out if bias is None else out + bias.reshape(1, out_ch, 1, 1)


def _pool(x: Tensor, kernel_size: Any, stride: Any, padding: Any, reduce: str) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"{reduce}_pool2d: expected an (N, C, H, W) input, got shape {x.shape}")
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    padding = _pair(padding, "padding")
    n, c, h, w = x.shape
    cols = NN.unfold2d(x.reshape(n * c, 1, h, w), kernel_size=kernel, stride=stride, padding=padding)
    pooled = cols.amax(1) if reduce == "max" else cols.mean(1)
    ho = NN.conv_output_size(h, kernel[0], stride[0], padding[0])
    wo = NN.conv_output_size(w, kernel[1], stride[1], padding[1])
    return pooled.reshape(n, c, ho, wo)


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Max over each window (zero padding, so use it only with non-negative inputs or none)."""
    return _pool(x, kernel_size, stride, padding, "max")


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    return _pool(x, kernel_size, stride, padding, "avg")


def layer_norm(x: Tensor, normalized_shape: Any, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` dimensions, then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[-len(shape):]) != shape:
        raise ValueError(f"layer_norm: input shape {x.shape} does not end with {shape}")
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    centered = x - x.mean(dims, keepdim=True)
    var = (centered * centered).mean(dims, keepdim=True)
    out = centered / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return x * NN.dropout_mask(shape=x.shape, p=float(p), dtype=x.dtype)


def embedding(indices: Tensor, weight: Tensor) -> Tensor:
    """Rows of ``weight`` selected by integer ``indices`` (any shape)."""
    return S.take(weight, indices, axis=0)


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad (or, with negative widths, crop) the last dimensions: ``pad`` lists (before, after)
    pairs starting from the last dimension, as in ``torch.nn.functional.pad``."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of widths, at most two per dimension of "
                         f"shape {x.shape}, got {pad}")
    pairs = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[2 * i], pad[2 * i + 1])
                                                    for i in reversed(range(len(pad) // 2))]
    crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for n, (b, a) in zip(x.shape, pairs))
    if any(s.start > s.stop for s in crop):
        raise ValueError(f"pad: widths {pad} crop more than the shape {x.shape} holds")
    if any(b < 0 or a < 0 for b, a in pairs):
        x = x[crop]
    widths = tuple((max(b, 0), max(a, 0)) for b, a in pairs)
    return S.pad(x, widths=widths, value=float(value))


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel (dimension 1) of an (N, C, ...) input.

    Training uses the batch's statistics (biased variance) and updates the running ones in place
    with ``momentum`` (unbiased variance, as PyTorch does); evaluation uses the running ones.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an (N, C, ...) input, got shape {x.shape}")
    dims = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        count = x.numel() // x.shape[1]
        if count < 2:
            raise ValueError(f"batch_norm: expected more than one value per channel in training, "
                             f"got input of shape {x.shape}")
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) * (x - mean)).mean(dims, keepdim=True)
        if running_mean is not None and running_var is not None:
            with no_grad():
                unbiased = var.reshape(-1) * (count / (count - 1))
                running_mean.copy_(running_mean * (1 - momentum) + mean.reshape(-1) * momentum)
                running_var.copy_(running_var * (1 - momentum) + unbiased * momentum)
    elif running_mean is None or running_var is None:
        raise ValueError("batch_norm: evaluation needs running_mean and running_var")
    else:
        mean, var = running_mean.reshape(shape), running_var.reshape(shape)
    out = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
