"""Datasets and loaders (``mlsys.data``), shaped like ``torch.utils.data``."""

from .collate import collate
from .dataset import Dataset, Subset, TensorDataset, Transformed
from .digits import load_digits
from .loader import DataLoader
from .tabular import load_breast_cancer
from .workers import WorkerInfo, get_worker_info

__all__ = ["Dataset", "TensorDataset", "Subset", "Transformed", "DataLoader", "collate",
           "get_worker_info", "WorkerInfo", "load_digits", "load_breast_cancer"]
