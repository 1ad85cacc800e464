"""Memory model against the closed forms of the ZeRO and activation-recomputation papers."""

from __future__ import annotations

import pytest

from simulators.training import ParallelConfig, TransformerConfig, memory_per_gpu
from simulators.training.memory import activation_bytes_per_layer, model_states


@pytest.mark.parametrize("zero,expected_gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure_1(zero: int, expected_gb: float) -> None:
    """Rajbhandari et al., SC'20, Figure 1: 7.5B parameters, 64 data-parallel GPUs, K=12."""
    total = sum(model_states(7.5e9, 64, zero))
    assert total / 1e9 == pytest.approx(expected_gb, abs=0.05)


GPT = TransformerConfig(layers=24, hidden=2048, heads=16, seq_len=2048)


def test_activation_formulas() -> None:
    """Korthikanti et al., 2022: sbh(34 + 5as/h) bytes per layer without parallelism."""
    s, b, h, a = 2048, 4, 2048, 16
    assert activation_bytes_per_layer(GPT, b, 1) == s * b * h * (34 + 5 * a * s / h)
    assert activation_bytes_per_layer(GPT, b, 8) == s * b * h * (10 + 24 / 8 + 5 * a * s / (8 * h))
    assert activation_bytes_per_layer(GPT, b, 8, "selective") == s * b * h * (10 + 3)
    assert activation_bytes_per_layer(GPT, b, 8, "full") == 2 * s * b * h
    with pytest.raises(ValueError, match="recompute must be"):
        activation_bytes_per_layer(GPT, b, 1, "some")


def test_one_f_one_b_first_stage_holds_all_layers() -> None:
    """Under 1F1B the first stage keeps p micro-batches of L/p layers: L layers, whatever p."""
    per_layer = activation_bytes_per_layer(GPT, 1, 1)
    for pp in (1, 2, 4, 8):
        mem = memory_per_gpu(GPT, ParallelConfig(pp=pp, global_batch=16))
        assert mem.activations == pytest.approx(GPT.layers * per_layer)
    gpipe = memory_per_gpu(GPT, ParallelConfig(pp=4, global_batch=16, schedule="gpipe"))
    assert gpipe.activations == pytest.approx(16 * GPT.layers / 4 * per_layer)


def test_full_recompute_and_model_states() -> None:
    par = ParallelConfig(dp=8, zero=2, recompute="full", global_batch=8)
    mem = memory_per_gpu(GPT, par)
    h, s = GPT.hidden, GPT.seq_len
    assert mem.activations == pytest.approx(GPT.layers * 2 * s * h + activation_bytes_per_layer(GPT, 1, 1))
    assert mem.params == pytest.approx(2 * GPT.params)
    assert mem.grads == pytest.approx(2 * GPT.params / 8)
    assert mem.optimizer == pytest.approx(12 * GPT.params / 8)


def test_gpt3_params_and_fit() -> None:
    gpt3 = TransformerConfig(layers=96, hidden=12288, heads=96, seq_len=2048)
    assert gpt3.params / 1e9 == pytest.approx(175, rel=0.01)
    assert not memory_per_gpu(gpt3, ParallelConfig()).fits(80e9)
    layout = ParallelConfig(dp=8, tp=8, pp=16, global_batch=1536, recompute="full")
    assert memory_per_gpu(gpt3, layout).fits(80e9)


def test_megatron_distributed_optimizer_bytes_per_parameter() -> None:
    """Megatron-LM's README table: bf16 parameters with fp32 gradients take 18 bytes per
    parameter, 6 + 12/d with the distributed optimizer (ZeRO stage 1)."""
    for d in (1, 8, 64):
        assert sum(model_states(1.0, d, 1, grad_bytes=4)) == pytest.approx(6 + 12 / d)
    assert sum(model_states(1.0, 8, 0, grad_bytes=4)) == 18
