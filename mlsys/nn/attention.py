"""Multi-head self-attention and a pre-norm transformer block, from the engine's primitives."""

from __future__ import annotations

import math

import numpy as np

from ..functions import where
from ..tensor import Tensor
from .layers import GELU, Dropout, LayerNorm, Linear
from .module import Module


def attend(qkv: Tensor, num_heads: int, causal: bool, dropout: Module) -> Tensor:
    """Scaled dot-product attention of ``num_heads`` heads from their projected queries, keys and
    values, ``qkv`` of shape (batch, seq, 3 * num_heads * head_dim): the context, (batch, seq,
    num_heads * head_dim). Tensor-parallel attention runs it on its own heads."""
    b, t, width = qkv.shape
    head_dim = width // (3 * num_heads)
    qkv = qkv.reshape(b, t, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # each (b, heads, t, head_dim)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
    if causal:
        future = np.triu(np.ones((t, t), dtype=bool), k=1)
        scores = where(Tensor(~future), scores, float(np.finfo(np.float32).min))
    weights = dropout(scores.softmax(-1))
    return (weights @ v).permute(0, 2, 1, 3).reshape(b, t, num_heads * head_dim)


class MultiheadSelfAttention(Module):
    """Scaled dot-product self-attention over (batch, sequence, embed) inputs."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 causal: bool = False) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadSelfAttention: embed_dim {embed_dim} is not divisible by "
                             f"num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.causal = embed_dim, num_heads, causal
        self.head_dim = embed_dim // num_heads
        self.qkv = Linear(embed_dim, 3 * embed_dim)
        self.out = Linear(embed_dim, embed_dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiheadSelfAttention: expected (batch, seq, {self.embed_dim}) "
                             f"input, got shape {x.shape}")
        return self.out(attend(self.qkv(x), self.num_heads, self.causal, self.dropout))

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, causal={self.causal}"


class TransformerBlock(Module):
    """Pre-norm block: x + attn(ln(x)), then x + mlp(ln(x)) with a 4x GELU MLP."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 causal: bool = True) -> None:
        super().__init__()
        self.ln1 = LayerNorm(embed_dim)
        self.attn = MultiheadSelfAttention(embed_dim, num_heads, dropout, causal)
        self.ln2 = LayerNorm(embed_dim)
        self.fc1 = Linear(embed_dim, 4 * embed_dim)
        self.act = GELU()
        self.fc2 = Linear(4 * embed_dim, embed_dim)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.drop(self.fc2(self.act(self.fc1(self.ln2(x)))))
