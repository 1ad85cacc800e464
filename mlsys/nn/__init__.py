"""Neural-network modules (``mlsys.nn``), shaped like ``torch.nn``."""

from . import functional
from .attention import MultiheadSelfAttention, TransformerBlock
from .layers import (
    GELU,
    AvgPool2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from .module import Module, Parameter

__all__ = [
    "functional", "Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "LayerNorm",
    "Embedding", "Dropout", "ReLU", "GELU", "Tanh", "Sigmoid", "Flatten", "Sequential",
    "MultiheadSelfAttention", "TransformerBlock",
]
