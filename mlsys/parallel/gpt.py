"""The small GPT every parallel strategy trains, and the toy language it learns.

:class:`GPT` is a decoder-only transformer built from the engine's own modules (token and
position embeddings, pre-norm :class:`~mlsys.nn.TransformerBlock`\\ s, a final layer norm and an
untied output projection). It is a sequence of *layers* (:meth:`GPT.layers`: the embedding, each
block, the head) so that a pipeline can cut it into chunks, and :func:`tensor_parallel` splits it
over a process group the Megatron way. :func:`markov_tokens` makes sequences from a fixed random
bigram model: a language with a known best loss (the chain's entropy rate) that a small model
learns in a few hundred steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import nn, random
from ..comm.group import ProcessGroup
from ..nn import functional as F
from ..nn.module import Module, Parameter
from ..tensor import Tensor
from .tensor import (
    ColumnParallelLinear,
    VocabParallelEmbedding,
    parallelize_block,
    vocab_parallel_cross_entropy,
)

__all__ = ["GPTConfig", "GPT", "Embeddings", "Head", "tensor_parallel", "markov_tokens", "to_float64"]


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a :class:`GPT` (every width divisible by 4, so it splits over 2 or 4 ranks)."""

    vocab: int = 32
    seq_len: int = 16
    dim: int = 32
    heads: int = 4
    layers: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab", "seq_len", "dim", "heads", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"GPTConfig: dim {self.dim} is not divisible by heads {self.heads}")

    @property
    def params(self) -> int:
        """Parameter count: embeddings, ``12 d^2 + 13 d`` per block, final norm, output layer."""
        d = self.dim
        return ((self.vocab + self.seq_len) * d + self.layers * (12 * d * d + 13 * d) + 2 * d
                + self.vocab * d)


class Embeddings(Module):
    """Token plus learned position embeddings of (batch, seq) token ids."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.tokens: Module = nn.Embedding(config.vocab, config.dim)
        self.positions = Parameter(0.02 * random.generator().standard_normal(
            (config.seq_len, config.dim)).astype(np.float32))

    def forward(self, ids: Tensor) -> Tensor:
        return self.tokens(ids) + self.positions[: ids.shape[1]]


class Head(Module):
    """Final layer norm and the projection onto the vocabulary (the logits)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.dim)
        self.proj: Module = nn.Linear(config.dim, config.vocab, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.norm(x))


class GPT(Module):
    """A causal language model: ``model(ids)`` gives logits, ``model.loss(ids, targets)`` the mean
    next-token cross-entropy."""

    def __init__(self, config: GPTConfig | None = None) -> None:
        super().__init__()
        self.config = config or GPTConfig()
        c = self.config
        self.embed = Embeddings(c)
        self.blocks = nn.ModuleList(nn.TransformerBlock(c.dim, c.heads, causal=True)
                                    for _ in range(c.layers))
        self.head = Head(c)
        self.criterion: Callable[[Tensor, Tensor], Tensor] = gpt_loss

    def layers(self) -> list[Module]:
        """The model as consecutive layers: embedding, blocks, head (a pipeline cuts this list)."""
        return [self.embed, *self.blocks, self.head]

    def forward(self, ids: Tensor) -> Tensor:
        x = ids
        for layer in self.layers():
            x = layer(x)
        return x

    def loss(self, ids: Tensor, targets: Tensor) -> Tensor:
        return self.criterion(self(ids), targets)


def gpt_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of (batch, seq, vocab) logits against (batch, seq) targets."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def tensor_parallel(model: GPT, group: ProcessGroup) -> GPT:
    """Split ``model`` over ``group`` in place, Megatron-style: vocabulary-parallel embedding,
    heads and MLPs split in every block, a vocabulary-parallel output layer and loss."""
    model.embed.tokens = VocabParallelEmbedding.from_dense(model.embed.tokens, group)
    for block in model.blocks:
        parallelize_block(block, group)
    model.head.proj = ColumnParallelLinear.from_dense(model.head.proj, group)
    model.criterion = lambda logits, targets: vocab_parallel_cross_entropy(logits, targets, group)
    return model


def markov_tokens(count: int, config: GPTConfig, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``count`` sequences of a fixed random bigram language: (inputs, next-token targets), each
    (count, seq_len). Each token has a few likely successors, so a model can learn it."""
    chain = np.random.default_rng(1234)  # the language itself is the same for every seed
    logits = 3.0 * chain.standard_normal((config.vocab, config.vocab))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    tokens = np.empty((count, config.seq_len + 1), np.int64)
    tokens[:, 0] = rng.integers(0, config.vocab, count)
    cumulative = probs.cumsum(axis=1)
    for t in range(config.seq_len):
        u = rng.random(count)[:, None]
        tokens[:, t + 1] = np.minimum((u > cumulative[tokens[:, t]]).sum(axis=1), config.vocab - 1)
    return Tensor(tokens[:, :-1]), Tensor(tokens[:, 1:])


def to_float64(model: Module) -> Module:
    """Cast every parameter to float64 (in place): equivalence tests then differ only by the
    order of floating-point sums, at the 1e-12 level."""
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model
