"""Quantization, low precision, mixed-precision training and pruning, checked against exact math."""

from __future__ import annotations

import numpy as np
import pytest

import mlsys
from mlsys import models, nn, optim
from mlsys.compress import (
    GradScaler,
    LowPrecisionLinear,
    QuantizedLinear,
    apply_masks,
    autocast_forward,
    csr_bytes,
    dequantize,
    int8_matmul,
    magnitude_prune,
    mixed_precision_step,
    model_bytes,
    quantize_per_channel,
    quantize_per_tensor,
    replace_linear,
    round_to_bfloat16,
    sparsity,
    underflow_fraction,
)
from mlsys.data import DataLoader, load_digits


@pytest.mark.parametrize("n, k, m", [(1, 1, 1), (3, 5, 7), (17, 64, 10), (64, 300, 33)])
def test_int8_matmul_is_exact_integer_arithmetic(n: int, k: int, m: int, rng: np.random.Generator) -> None:
    a = rng.integers(-127, 128, (n, k), dtype=np.int8)
    w = rng.integers(-127, 128, (m, k), dtype=np.int8)
    out = int8_matmul(a, w)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, a.astype(np.int64) @ w.astype(np.int64).T)


def test_int8_matmul_refuses_other_operands() -> None:
    with pytest.raises(TypeError, match="int8"):
        int8_matmul(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int8))
    with pytest.raises(ValueError, match=r"\(n, k\) and \(m, k\)"):
        int8_matmul(np.zeros((2, 3), np.int8), np.zeros((2, 4), np.int8))


def test_quantization_error_is_at_most_half_a_step_and_per_channel_is_finer(rng: np.random.Generator) -> None:
    w = rng.standard_normal((16, 32)).astype(np.float32) * np.geomspace(0.01, 10, 16)[:, None]
    q, s = quantize_per_tensor(w)
    assert np.abs(dequantize(q, s) - w).max() <= s / 2 + 1e-7
    qc, sc = quantize_per_channel(w)
    err_c = np.abs(dequantize(qc, sc, axis=0) - w)
    assert (err_c <= sc[:, None] / 2 + 1e-7).all()
    assert err_c[:4].max() < 0.01 * np.abs(dequantize(q, s) - w)[:4].max()  # small rows gain most
    with pytest.raises(ValueError, match="NaN"):
        quantize_per_tensor(np.array([1.0, np.nan], np.float32))


def test_quantized_and_low_precision_layers_track_the_float32_layer(rng: np.random.Generator) -> None:
    linear = nn.Linear(64, 32)
    x = mlsys.Tensor(rng.random((8, 64), dtype=np.float32))
    exact = linear(x).data
    for layer, tol in ((QuantizedLinear(linear, True), 0.02), (QuantizedLinear(linear, False), 0.03),
                       (LowPrecisionLinear(linear, "float16"), 2e-3),
                       (LowPrecisionLinear(linear, "bfloat16"), 2e-2)):
        got = layer(x).data
        assert got.dtype == np.float32 and got.shape == exact.shape
        assert np.abs(got - exact).max() <= tol * np.abs(exact).max(), layer


def test_rewritten_model_keeps_its_predictions_and_shrinks() -> None:
    model = models.mlp()
    x = mlsys.Tensor(load_digits("test").arrays[0][:200])
    int8 = replace_linear(model, QuantizedLinear)
    agree = (int8(x).data.argmax(1) == model(x).data.argmax(1)).mean()
    assert agree > 0.95
    assert model_bytes(model) == sum(p.data.nbytes for p in model.parameters())
    assert model_bytes(int8) < 0.3 * model_bytes(model)
    assert model_bytes(replace_linear(model, lambda lin: LowPrecisionLinear(lin, "bfloat16"))) == \
        model_bytes(model) // 2


def test_bfloat16_rounding_is_round_to_nearest_even() -> None:
    one_ulp = 2.0 ** -7  # bfloat16 keeps 7 mantissa bits
    x = np.array([1.0, 1 + one_ulp, 1 + one_ulp / 2, 1 + 3 * one_ulp / 2, 1 + one_ulp / 4, -2.5,
                  np.inf, 3.0e38], np.float32)
    got = round_to_bfloat16(x)
    np.testing.assert_array_equal(got[:6], [1.0, 1 + one_ulp, 1.0, 1 + 2 * one_ulp, 1.0, -2.5])
    assert got[6] == np.inf and np.isnan(round_to_bfloat16(np.array([np.nan], np.float32)))[0]
    assert abs(got[7] / 3.0e38 - 1) <= 2.0 ** -8
    assert (got.view(np.uint32) & 0xFFFF == 0).all()


def test_grad_scaler_skips_overflowing_steps_and_grows_after_clean_ones() -> None:
    w = nn.Parameter(np.ones(3, np.float32))
    opt = optim.SGD([w], lr=0.1)
    scaler = GradScaler(init_scale=8.0, growth_interval=2)
    w.grad = mlsys.Tensor(np.array([np.inf, 1.0, 1.0], np.float32))
    assert not scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 4.0 and (w.data == 1).all() and scaler.skipped == 1
    for _ in range(2):
        w.grad = mlsys.Tensor(np.full(3, 4.0, np.float32))  # a scaled gradient of 1
        assert scaler.step(opt)
        scaler.update()
    np.testing.assert_allclose(w.data, 0.8)  # two steps of lr * 1
    assert scaler.get_scale() == 8.0


def test_loss_scaling_rescues_gradients_that_underflow_in_float16() -> None:
    g = np.array([1e-9, 3e-8, 1e-6, 0.5, 0.0])
    assert underflow_fraction(g) == 0.25  # 1e-9 is below float16's smallest subnormal
    assert underflow_fraction(g, scale=2.0 ** 16) == 0.0


def test_mixed_precision_training_matches_float32_gradients_and_learns() -> None:
    model = models.mlp()
    x, y = (mlsys.Tensor(a) for a in load_digits("train").arrays)
    xb, yb = x[:64], y[:64]
    loss = nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    exact = [p.grad.data.copy() for p in model.parameters()]
    model.zero_grad()
    half = nn.functional.cross_entropy(autocast_forward(model, xb), yb)
    (half * 1024.0).backward()
    for p, g in zip(model.parameters(), exact):  # equal up to float16 rounding (and rare ReLU flips)
        assert p.grad.dtype == np.float32
        got = p.grad.data.ravel() / 1024.0
        assert got @ g.ravel() / (np.linalg.norm(got) * np.linalg.norm(g)) > 0.99
        assert np.linalg.norm(got - g.ravel()) < 0.05 * np.linalg.norm(g)
    model.zero_grad()
    opt, scaler = optim.Adam(model.parameters(), lr=3e-3), GradScaler()
    losses = [mixed_precision_step(model, opt, xb, yb, scaler) for xb, yb in
              DataLoader(load_digits("train"), 64, shuffle=True)]
    assert np.mean(losses[-5:]) < 0.5 * losses[0] and all(np.isfinite(losses))


def test_magnitude_pruning_zeroes_the_smallest_weights() -> None:
    model = models.mlp()
    before = [m.weight.data.copy() for m in model.modules() if isinstance(m, nn.Linear)]
    masks = magnitude_prune(model, 0.75)
    assert sparsity(model) == pytest.approx(0.75, abs=1e-3)
    for w0, mask in zip(before, masks):
        assert np.abs(w0[~mask]).max() <= np.abs(w0[mask]).min()
    for p in model.parameters():
        p.data = p.data + 1.0
    apply_masks(model, masks)
    assert sparsity(model) == pytest.approx(0.75, abs=1e-3)
    nnz = sum(int(m.sum()) for m in masks)
    biases = sum(m.bias.data.nbytes for m in model.modules() if isinstance(m, nn.Linear))
    assert csr_bytes(model) == nnz * 8 + (128 + 128 + 10 + 3) * 4 + biases
    with pytest.raises(ValueError, match="amount"):
        magnitude_prune(model, 1.0)
