"""Tensor parallelism on real processes equals the one-process model: loss and every gradient.

Models are float64, so the only difference between the two is the order of floating-point sums
(partial products summed by an all-reduce instead of inside one matmul): they agree to 1e-12,
where float32 would agree to about 1e-6 and hide nothing bigger. Each rank's gradient is
compared with the same slice of the dense gradient that the rank's weights were cut from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import mlsys
from mlsys import nn
from mlsys.comm import launch
from mlsys.parallel.gpt import GPT, GPTConfig, markov_tokens, tensor_parallel, to_float64
from mlsys.parallel.mappings import copy_to_group, gather_from_group, reduce_from_group, scatter_to_group
from mlsys.parallel.tensor import ColumnParallelLinear, RowParallelLinear, vocab_parallel_cross_entropy

CONFIG = GPTConfig(vocab=32, seq_len=8, dim=16, heads=4, layers=2)
TOLERANCE = dict(rtol=1e-10, atol=1e-12)


@dataclass(frozen=True)
class Slicer:
    """Stands in for rank ``rank`` of a group of ``world_size`` where only slicing happens."""

    rank: int
    world_size: int


def dense_gpt(seed: int = 0) -> GPT:
    mlsys.manual_seed(seed)
    return to_float64(GPT(CONFIG))


def dense_gradients() -> tuple[float, GPT]:
    model = dense_gpt()
    x, y = markov_tokens(4, CONFIG)
    loss = model.loss(x, y)
    loss.backward()
    for p in model.parameters():  # the gradients, laid out like the weights, to be sliced
        p.data = p.grad.data
    return float(loss.item()), model


def _tp_rank(group) -> tuple[float, dict[str, np.ndarray]]:  # noqa: ANN001
    model = tensor_parallel(dense_gpt(), group)
    x, y = markov_tokens(4, CONFIG)
    loss = model.loss(x, y)
    loss.backward()
    return float(loss.item()), {n: p.grad.data.copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("world", [2, 4])
def test_tensor_parallel_gpt_equals_one_process(world: int) -> None:
    loss, grads = dense_gradients()
    for rank, (tp_loss, tp_grads) in enumerate(launch(_tp_rank, world)):
        assert tp_loss == pytest.approx(loss, rel=1e-12)
        expected = dict(tensor_parallel(dense_gradients()[1], Slicer(rank, world)).named_parameters())
        assert set(tp_grads) == set(expected)
        for name, g in tp_grads.items():
            assert g.shape == expected[name].shape, name
            np.testing.assert_allclose(g, expected[name].data, **TOLERANCE, err_msg=name)


def _mappings_rank(group) -> str:  # noqa: ANN001
    t, r = group.world_size, group.rank
    rng = np.random.default_rng(0)
    x = mlsys.tensor(rng.standard_normal((3, 4 * t)), requires_grad=True)
    # f and g: identity/all-reduce forward, all-reduce/identity backward
    y = reduce_from_group(copy_to_group(x, group) * (r + 1.0), group)
    np.testing.assert_allclose(y.data, x.data * sum(range(1, t + 1)))
    y.backward(mlsys.tensor(np.ones_like(x.data)))
    np.testing.assert_allclose(x.grad.data, sum(range(1, t + 1)) * np.ones_like(x.data))
    # scatter then gather is the identity both ways
    x.grad = None
    part = scatter_to_group(x, group)
    assert part.shape == (3, 4)
    np.testing.assert_array_equal(part.data, x.data[:, 4 * r: 4 * r + 4])
    whole = gather_from_group(part * 2.0, group)
    np.testing.assert_array_equal(whole.data, 2 * x.data)
    whole.sum().backward()
    np.testing.assert_array_equal(x.grad.data, 2 * np.ones_like(x.data))
    # a column-parallel layer that gathers its output feeding a row-parallel one that splits
    # its input: the dense two-layer MLP
    mlsys.manual_seed(1)
    first, second = nn.Linear(4 * t, 8), nn.Linear(8, 3)
    for p in (*first.parameters(), *second.parameters()):
        p.data = p.data.astype(np.float64)
    dense_out = second(first(x).relu())
    col = ColumnParallelLinear.from_dense(first, group, gather_output=True)
    row = RowParallelLinear.from_dense(second, group, input_is_parallel=False)
    np.testing.assert_allclose(row(col(x).relu()).data, dense_out.data, **TOLERANCE)
    # the vocabulary-parallel loss equals the dense cross-entropy, gradient included
    logits = mlsys.tensor(rng.standard_normal((5, 4 * t)), requires_grad=True)
    target = mlsys.tensor(rng.integers(0, 4 * t, 5))
    dense = mlsys.nn.functional.cross_entropy(logits, target)
    dense.backward()
    mine = mlsys.tensor(logits.data[:, 4 * r: 4 * r + 4], requires_grad=True)
    loss = vocab_parallel_cross_entropy(mine, target, group)
    loss.backward()
    assert loss.item() == pytest.approx(dense.item(), rel=1e-12)
    np.testing.assert_allclose(mine.grad.data, logits.grad.data[:, 4 * r: 4 * r + 4], **TOLERANCE)
    with pytest.raises(ValueError, match="last dimension 5 is not divisible by the group's"):
        scatter_to_group(mlsys.tensor(np.zeros((2, 5))), group)
    with pytest.raises(ValueError, match=r"out_features 3 is not divisible by the group's"):
        ColumnParallelLinear(4, 3, group)
    with pytest.raises(ValueError, match=r"need targets of shape \(5,\), got \(4,\)"):
        vocab_parallel_cross_entropy(mine, mlsys.tensor(np.zeros(4, np.int64)), group)
    return "ok"


def test_mappings_and_layers_are_conjugate_and_match_dense() -> None:
    assert launch(_mappings_rank, 2) == ["ok", "ok"]

