"""Magnitude pruning: zero the weights of smallest absolute value (Han et al., *Learning both
Weights and Connections for Efficient Neural Networks*, NeurIPS 2015).

Unstructured sparsity shrinks a model only in a sparse format (CSR: a value and a column index
per non-zero, plus row pointers), and speeds it up only with kernels that skip zeros: a dense
matmul over a pruned matrix costs the same. :func:`csr_bytes` gives the sparse size.
"""

from __future__ import annotations

import numpy as np

from .. import nn

__all__ = ["magnitude_prune", "sparsity", "csr_bytes", "apply_masks"]


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def magnitude_prune(model: nn.Module, amount: float) -> list[np.ndarray]:
    """Zero the ``amount`` fraction (0..1) of smallest-magnitude weights in each Linear/Conv2d,
    in place; biases are kept. Returns the keep-masks (to re-apply after fine-tuning steps)."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"magnitude_prune: amount must be in [0, 1), got {amount!r}")
    masks = []
    for w in _weights(model):
        k = int(round(amount * w.data.size))
        mask = np.ones(w.data.shape, dtype=bool)
        if k:
            cut = np.argpartition(np.abs(w.data).ravel(), k - 1)[:k]
            mask.ravel()[cut] = False
        w.data = w.data * mask
        masks.append(mask)
    return masks


def apply_masks(model: nn.Module, masks: list[np.ndarray]) -> None:
    """Zero pruned weights again (after an optimizer step moved them)."""
    weights = _weights(model)
    if len(weights) != len(masks):
        raise ValueError(f"apply_masks: {len(masks)} masks for {len(weights)} weight tensors")
    for w, mask in zip(weights, masks):
        w.data = w.data * mask


def sparsity(model: nn.Module) -> float:
    """Fraction of zero entries over all Linear/Conv2d weights."""
    weights = _weights(model)
    total = sum(w.data.size for w in weights)
    return sum(int((w.data == 0).sum()) for w in weights) / total if total else 0.0


def csr_bytes(model: nn.Module, value_bytes: int = 4, index_bytes: int = 4) -> int:
    """Bytes of the model with each weight matrix in CSR (biases and other parameters dense)."""
    total = 0
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is None:
                continue
            if name == "weight" and isinstance(module, (nn.Linear, nn.Conv2d)):
                rows = p.data.shape[0]
                total += int((p.data != 0).sum()) * (value_bytes + index_bytes) + (rows + 1) * index_bytes
            else:
                total += p.data.nbytes
    return total
