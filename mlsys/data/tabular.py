"""A tabular dataset bundled with scikit-learn, as named columns (no download).

Breast cancer (Wisconsin diagnostic): 569 tumours, 30 measurements of cell nuclei computed from a
digitized image of a fine-needle aspirate (Street, Wolberg and Mangasarian, 1993; the UCI copy
that scikit-learn ships).
"""

from __future__ import annotations

import numpy as np


def load_breast_cancer(split: str = "train", test_fraction: float = 0.25,
                       seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The measurements as ``{column name: float64 values}`` and the labels (1 = malignant).

    The train/test split is a fixed shuffle decided by ``seed``; ``"all"`` is every row.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"load_breast_cancer: split must be 'train', 'test' or 'all', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_breast_cancer: test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_breast_cancer as sk_load

    bunch = sk_load()
    labels = (bunch.target == list(bunch.target_names).index("malignant")).astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    pick = {"test": order[:n_test], "train": order[n_test:], "all": order}[split]
    columns = {str(name): bunch.data[pick, i].astype(np.float64)
               for i, name in enumerate(bunch.feature_names)}
    return columns, labels[pick]
