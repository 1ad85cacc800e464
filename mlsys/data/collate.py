"""Turning examples into batches: stack them field by field into numpy columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .dataset import Dataset, TensorDataset


def collate(examples: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Stack examples into columns: tuples field by field, anything else as one column."""
    if not examples:
        raise ValueError("collate: no examples to stack")
    if isinstance(examples[0], tuple):
        return tuple(np.stack(column) for column in zip(*examples))
    return (np.stack(examples),)


def gather(dataset: Dataset, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    """The examples of ``dataset`` at ``indices``, collated (one fancy-index for a TensorDataset)."""
    if isinstance(dataset, TensorDataset):
        return tuple(np.ascontiguousarray(column) for column in dataset[indices])
    return collate([dataset[i] for i in indices.tolist()])
