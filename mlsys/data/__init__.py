"""Datasets and loaders (``mlsys.data``)."""

from .dataset import DataLoader, Dataset, Subset, TensorDataset
from .digits import load_digits

__all__ = ["Dataset", "TensorDataset", "Subset", "DataLoader", "load_digits"]
