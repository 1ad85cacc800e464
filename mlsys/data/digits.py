"""The handwritten-digits dataset bundled with scikit-learn (1,797 8x8 images, no download).

Source: the UCI "Optical Recognition of Handwritten Digits" data (Alpaydin and Kaynak, 1998),
as shipped inside scikit-learn.
"""

from __future__ import annotations

import numpy as np

from .dataset import TensorDataset


def load_digits(split: str = "train", flatten: bool = True, test_fraction: float = 0.2,
                seed: int = 0) -> TensorDataset:
    """Digits scaled to [0, 1]: features float32 (N, 64) or (N, 1, 8, 8), labels int64.

    The train/test split is a fixed, stratified-by-shuffle partition decided by ``seed``.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"load_digits: split must be 'train', 'test' or 'all', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    pick = {"test": order[:n_test], "train": order[n_test:], "all": order}[split]
    return TensorDataset(x[pick], y[pick])
