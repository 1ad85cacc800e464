"""ZeRO stages 1, 2 and 3 on real processes: DDP's trajectory, and the memory model's bytes.

Each stage trains the float64 GPT for three Adam steps on different data per rank and ends with
the parameters of :class:`~mlsys.comm.DistributedDataParallel` (to 1e-12: the gradient mean is
summed in another order by a reduce-scatter than by the all-reduce). After a step's backward each
rank holds exactly the parameter, gradient and optimizer bytes of
``simulators.training.memory.model_states`` (float64: 8, 8 and 16 bytes per parameter), since
every parameter of this GPT splits evenly over 2 and 4 ranks.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlsys
from mlsys import optim
from mlsys.comm import DistributedDataParallel, launch
from mlsys.parallel.gpt import GPT, GPTConfig, gpt_loss, markov_tokens, to_float64
from mlsys.parallel.zero import ZeroDataParallel
from simulators.training.memory import model_states

CONFIG = GPTConfig(vocab=32, seq_len=8, dim=16, heads=4, layers=2)
STEPS, BATCH = 3, 4


def adam(params):  # noqa: ANN001, ANN201
    return optim.Adam(params, lr=1e-2)


def _train(group, stage: int) -> tuple:  # noqa: ANN001
    mlsys.manual_seed(0)
    model = to_float64(GPT(CONFIG))
    x, y = markov_tokens(BATCH * STEPS, CONFIG, seed=1 + group.rank)
    batches = [(x[k * BATCH:(k + 1) * BATCH], y[k * BATCH:(k + 1) * BATCH]) for k in range(STEPS)]
    if stage == 0:
        ddp, opt = DistributedDataParallel(model, group), adam(model.parameters())
        for xb, yb in batches:
            opt.zero_grad()
            gpt_loss(ddp(xb), yb).backward()
            opt.step()
        ddp.close()
        return [p.data.copy() for p in model.parameters()], None, 0
    zero = ZeroDataParallel(model.layers(), group, stage, adam, bucket_bytes=4096)
    held = None
    for k, (xb, yb) in enumerate(batches):
        zero.zero_grad()
        gpt_loss(zero(xb), yb).backward()
        if k == STEPS - 1:
            held = zero.state_bytes()
        zero.step()
    zero.close()
    return zero.full_parameters(), held, zero.padding


@pytest.mark.parametrize("world", [2, 4])
def test_zero_follows_ddp_and_holds_the_modelled_bytes(world: int) -> None:
    reference = launch(_train, world, 0)
    for stage in (1, 2, 3):
        for params, held, padding in launch(_train, world, stage):
            for got, want in zip(params, reference[0][0]):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
            assert padding == 0
            expected = model_states(CONFIG.params, world, stage, grad_bytes=8, param_bytes=8,
                                    optimizer_bytes=16)
            assert (held.params, held.grads, held.optimizer) == expected, stage


def _bad(group) -> str:  # noqa: ANN001
    with pytest.raises(ValueError, match="stage must be one of .1, 2, 3., got 4"):
        ZeroDataParallel([mlsys.nn.Linear(2, 2)], group, 4, adam)
    mlsys.manual_seed(0)
    layer = mlsys.nn.Linear(3, 1, bias=False)  # 3 parameters on 2 ranks: one element of padding
    reference = layer.weight.data.copy()
    zero = ZeroDataParallel([layer], group, 3, adam)
    assert zero.padding == 1
    zero(mlsys.tensor(np.ones((2, 3), np.float32))).sum().backward()
    zero.step()
    (weight,) = zero.full_parameters()
    assert weight.shape == (1, 3)
    np.testing.assert_allclose(weight, reference - 1e-2, rtol=1e-6)  # Adam's first step: -lr
    return "ok"


def test_bad_stage_is_named_and_odd_sizes_are_padded() -> None:
    assert launch(_bad, 2) == ["ok", "ok"]
