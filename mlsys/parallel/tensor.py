"""Megatron-style tensor parallelism: layers whose weights are split over a process group.

Following Shoeybi et al. (2019), a transformer layer is split so that it communicates twice in
the forward pass and twice in the backward pass:

* :class:`ColumnParallelLinear` keeps a block of output features (rows of ``W``): it reads the
  whole input through ``f`` (:func:`~mlsys.parallel.mappings.copy_to_group`) and produces its
  block of the output, with no communication in the forward pass;
* :class:`RowParallelLinear` keeps the matching block of input features (columns of ``W``): it
  multiplies its block of the input and sums the ranks' partial products through ``g``
  (:func:`~mlsys.parallel.mappings.reduce_from_group`), then adds the (replicated) bias;
* attention splits its heads: the query/key/value projection is column-parallel over whole heads,
  the output projection row-parallel (:func:`parallelize_attention`); the MLP is a column- then
  a row-parallel linear (:func:`parallelize_block`);
* :class:`VocabParallelEmbedding` keeps a block of the vocabulary's rows and
  :func:`vocab_parallel_cross_entropy` computes the loss from each rank's block of the logits
  without gathering them (two all-reduces of one number per token, plus the maximum).

Every layer is made from its dense counterpart (``from_dense``), taking this rank's slice of the
dense weights: a model built under one seed on every rank and then parallelized computes the
same function as the dense model (the tests check loss and gradients at 2 and 4 ranks). Layer
norms, row-parallel biases and position embeddings are replicated and stay equal on every rank,
since their gradients come from values every rank holds in full.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..comm.group import ProcessGroup
from ..nn import functional as F
from ..nn.module import Module, Parameter
from ..tensor import Tensor
from .mappings import copy_to_group, gather_from_group, reduce_from_group, scatter_to_group, shard_range

__all__ = ["ColumnParallelLinear", "RowParallelLinear", "VocabParallelEmbedding",
           "vocab_parallel_cross_entropy", "parallelize_attention", "parallelize_block"]


def _slice(array: np.ndarray, index: np.ndarray | slice, axis: int) -> Parameter:
    taken = array[index] if axis == 0 else array[:, index]
    return Parameter(np.array(taken, copy=True))


class ColumnParallelLinear(Module):
    """``Y_i = f(X) A_i^T + b_i``: this rank's block of ``out_features`` (Megatron's column split).

    ``gather_output=True`` all-gathers the blocks into the whole output (its gradient is then
    split back); otherwise the output stays split, ready for a :class:`RowParallelLinear`.
    """

    def __init__(self, in_features: int, out_features: int, group: ProcessGroup, bias: bool = True,
                 gather_output: bool = False) -> None:
        super().__init__()
        self._take(nn.Linear(in_features, out_features, bias), group, gather_output, None)

    @classmethod
    def from_dense(cls, linear: nn.Linear, group: ProcessGroup, gather_output: bool = False,
                   rows: np.ndarray | None = None) -> ColumnParallelLinear:
        """This rank's rows of ``linear`` (its evenly split block, or the given ``rows``)."""
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer._take(linear, group, gather_output, rows)
        return layer

    def _take(self, linear: nn.Linear, group: ProcessGroup, gather_output: bool,
              rows: np.ndarray | None) -> None:
        if rows is None:
            rows = slice(*shard_range(linear.out_features, group, "out_features"))
        self.group, self.gather_output = group, gather_output
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = _slice(linear.weight.data, rows, 0)
        self.bias = None if linear.bias is None else _slice(linear.bias.data, rows, 0)

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(copy_to_group(x, self.group), self.weight, self.bias)
        return gather_from_group(y, self.group) if self.gather_output else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features} "
                f"({self.weight.shape[0]} on this rank of {self.group.world_size})")


class RowParallelLinear(Module):
    """``Y = g(X_i A_i^T) + b``: this rank's block of ``in_features`` (Megatron's row split).

    The input is this rank's block of features (``input_is_parallel=True``: the output of a
    :class:`ColumnParallelLinear`), or the whole input, of which it keeps its block.
    """

    def __init__(self, in_features: int, out_features: int, group: ProcessGroup, bias: bool = True,
                 input_is_parallel: bool = True) -> None:
        super().__init__()
        self._take(nn.Linear(in_features, out_features, bias), group, input_is_parallel)

    @classmethod
    def from_dense(cls, linear: nn.Linear, group: ProcessGroup,
                   input_is_parallel: bool = True) -> RowParallelLinear:
        """This rank's block of the columns of ``linear``; the bias is kept whole."""
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer._take(linear, group, input_is_parallel)
        return layer

    def _take(self, linear: nn.Linear, group: ProcessGroup, input_is_parallel: bool) -> None:
        columns = slice(*shard_range(linear.in_features, group, "in_features"))
        self.group, self.input_is_parallel = group, input_is_parallel
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = _slice(linear.weight.data, columns, 1)
        self.bias = None if linear.bias is None else _slice(linear.bias.data, slice(None), 0)

    def forward(self, x: Tensor) -> Tensor:
        if not self.input_is_parallel:
            x = scatter_to_group(x, self.group)
        y = reduce_from_group(F.linear(x, self.weight), self.group)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features} ({self.weight.shape[1]} on this rank of "
                f"{self.group.world_size}), out_features={self.out_features}")


class VocabParallelEmbedding(Module):
    """An embedding table split by rows: each rank looks up the tokens in its block of the
    vocabulary (zeros for the others) and ``g`` sums the ranks' lookups."""

    def __init__(self, num_embeddings: int, embedding_dim: int, group: ProcessGroup) -> None:
        super().__init__()
        self._take(nn.Embedding(num_embeddings, embedding_dim), group)

    @classmethod
    def from_dense(cls, embedding: nn.Embedding, group: ProcessGroup) -> VocabParallelEmbedding:
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer._take(embedding, group)
        return layer

    def _take(self, embedding: nn.Embedding, group: ProcessGroup) -> None:
        self.group = group
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
        self.start, self.stop = shard_range(self.num_embeddings, group, "num_embeddings")
        self.weight = _slice(embedding.weight.data, slice(self.start, self.stop), 0)

    def forward(self, indices: Tensor) -> Tensor:
        ids = np.asarray(indices.data)
        mine = (ids >= self.start) & (ids < self.stop)
        local = F.embedding(Tensor(np.where(mine, ids - self.start, 0)), self.weight)
        masked = local * Tensor(mine[..., None].astype(self.weight.dtype))
        return reduce_from_group(masked, self.group)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim} (rows {self.start}..{self.stop - 1} "
                f"on this rank)")


def vocab_parallel_cross_entropy(logits: Tensor, target: Tensor, group: ProcessGroup) -> Tensor:
    """Mean cross-entropy of logits split over ``group`` along the vocabulary (the last
    dimension), without gathering them: the maximum, the sum of exponentials and the target's
    logit are each all-reduced over the ranks (Megatron-LM's ``vocab_parallel_cross_entropy``).

    ``logits`` is (..., V / t) on each rank, ``target`` holds class indices of shape (...).
    """
    if logits.shape[:-1] != tuple(np.shape(target.data)):
        raise ValueError(f"vocab_parallel_cross_entropy: logits of shape {logits.shape} need "
                         f"targets of shape {logits.shape[:-1]}, got {np.shape(target.data)}")
    width = logits.shape[-1]
    start = group.rank * width
    with no_grad():
        top = np.array(logits.data.max(axis=-1, keepdims=True), copy=True)
        group.all_reduce(top, op="max")
    shifted = logits - Tensor(top)  # a constant shift: the loss does not depend on it
    total = reduce_from_group(shifted.exp().sum(-1), group)
    ids = np.asarray(target.data)
    mine = (ids >= start) & (ids < start + width)
    local = Tensor(np.where(mine, ids - start, 0)[..., None])
    picked = shifted.gather(-1, local).reshape(ids.shape) * Tensor(mine.astype(logits.dtype))
    return (total.log() - reduce_from_group(picked, group)).mean()


def parallelize_attention(attention: nn.MultiheadSelfAttention,
                          group: ProcessGroup) -> nn.MultiheadSelfAttention:
    """Split ``attention``'s heads over ``group`` (in place): the query/key/value projection keeps
    the rows of this rank's heads, the output projection the matching columns."""
    heads, head_dim, embed = attention.num_heads, attention.head_dim, attention.embed_dim
    start, stop = shard_range(heads, group, "num_heads")
    rows = np.array([which * embed + head * head_dim + d for which in range(3)
                     for head in range(start, stop) for d in range(head_dim)])
    attention.qkv = ColumnParallelLinear.from_dense(attention.qkv, group, rows=rows)
    attention.out = RowParallelLinear.from_dense(attention.out, group)
    attention.num_heads = stop - start
    return attention


def parallelize_block(block: nn.TransformerBlock, group: ProcessGroup) -> nn.TransformerBlock:
    """Make ``block`` tensor-parallel over ``group`` (in place): heads split, MLP split as
    column- then row-parallel linear, layer norms replicated. Its forward is unchanged."""
    parallelize_attention(block.attn, group)
    block.fc1 = ColumnParallelLinear.from_dense(block.fc1, group)
    block.fc2 = RowParallelLinear.from_dense(block.fc2, group)
    return block
