"""Neural-network modules (``mlsys.nn``), shaped like ``torch.nn``."""

from . import functional
from .attention import MultiheadSelfAttention, TransformerBlock
from .layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    Linear,
    MaxPool2d,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Tanh,
)
from .module import Module, Parameter

__all__ = [
    "functional", "Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "LayerNorm",
    "BatchNorm1d", "BatchNorm2d", "Embedding", "Dropout", "ReLU", "GELU", "SiLU", "Tanh", "Sigmoid",
    "Flatten", "Identity", "Sequential", "ModuleList",
    "MultiheadSelfAttention", "TransformerBlock",
]
