"""Map-style datasets shaped like ``torch.utils.data``: ``Dataset``, ``TensorDataset``, ``Subset``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor


class Dataset:
    """Anything with ``__len__`` and ``__getitem__`` returning one example."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Examples are the i-th rows of equally long arrays (features, labels...)."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array")
        self.arrays = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays]
        lengths = {len(a) for a in self.arrays}
        if len(lengths) != 1:
            raise ValueError(f"TensorDataset: arrays have different lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)


class Subset(Dataset):
    """The examples of ``dataset`` at ``indices`` (e.g. one rank's shard)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[self.indices[index]]


class Transformed(Dataset):
    """``dataset`` with ``transform`` applied to the first field of each example (the features).

    The per-sample work a loader's worker processes exist for: decoding, augmentation, feature
    extraction (torchvision's ``transform=`` argument). ``transform`` runs when an example is read,
    in whichever process reads it.
    """

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Any]) -> None:
        if not callable(transform):
            raise TypeError(f"Transformed: transform must be callable, got {transform!r}")
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        example = self.dataset[index]
        if isinstance(example, tuple):
            return (self.transform(example[0]), *example[1:])
        return self.transform(example)
