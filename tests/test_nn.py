"""Modules, optimizers and data loading behave as their PyTorch namesakes do."""

from __future__ import annotations

import numpy as np
import pytest

import mlsys
from mlsys import nn, optim
from mlsys.data import DataLoader, Subset, TensorDataset, load_digits
from mlsys.optim import rules


def test_module_finds_nested_parameters_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), nn.Sequential(shared, nn.Linear(3, 2)))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.1.weight", "2.1.bias"]
    assert model.num_parameters() == 3 * 3 + 3 + 3 * 2 + 2


def test_state_dict_round_trip_and_errors():
    a, b = mlsys.models.mlp(hidden=8), mlsys.models.mlp(hidden=8)
    b.load_state_dict(a.state_dict())
    x = mlsys.randn(4, 64)
    np.testing.assert_allclose(a(x).detach().numpy(), b(x).detach().numpy())
    state = a.state_dict()
    state["0.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"0.weight has shape \(8, 64\).*\(3, 3\)"):
        b.load_state_dict(state)
    with pytest.raises(KeyError, match="missing keys.*unexpected keys"):
        b.load_state_dict({"nope": np.zeros(1)})


def test_train_and_eval_switch_dropout():
    model = nn.Sequential(nn.Dropout(0.5))
    x = mlsys.ones(1000)
    assert (model(x).numpy() == 0).mean() == pytest.approx(0.5, abs=0.06)
    model.eval()
    assert (model(x).numpy() == 1).all()


def test_layer_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"expected inputs with 4 features.*\(2, 3\)"):
        nn.Linear(4, 2)(mlsys.zeros(2, 3))
    with pytest.raises(ValueError, match=r"input has 2 channels but weight expects 3"):
        nn.Conv2d(3, 4, 3)(mlsys.zeros(1, 2, 5, 5))
    with pytest.raises(ValueError, match="not divisible"):
        nn.MultiheadSelfAttention(6, 4)


def test_conv2d_matches_a_direct_loop():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    out = nn.functional.conv2d(mlsys.tensor(x), mlsys.tensor(w), stride=2, padding=1).numpy()
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((1, 3, 3, 3))
    for o in range(3):
        for i in range(3):
            for j in range(3):
                ref[0, o, i, j] = (padded[0, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] * w[o]).sum()
    np.testing.assert_allclose(out, ref, rtol=1e-10)


def test_causal_attention_ignores_the_future():
    attn = nn.MultiheadSelfAttention(8, 2, causal=True)
    x = mlsys.randn(1, 5, 8)
    y = mlsys.tensor(x.data.copy())
    y.data[0, 3:] += 10.0
    np.testing.assert_allclose(attn(x).data[0, :3], attn(y).data[0, :3], rtol=1e-5, atol=1e-5)


def _quadratic_steps(opt_cls, **hyper):
    w = mlsys.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = opt_cls([w], **hyper)
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    return w.data


def test_sgd_momentum_matches_the_recurrence():
    w, buf = np.array([1.0, -2.0]), None
    for _ in range(3):
        g = 2 * w + 0.1 * w
        buf = g if buf is None else 0.9 * buf + g
        w = w - 0.1 * buf
    got = _quadratic_steps(optim.SGD, lr=0.1, momentum=0.9, weight_decay=0.1)
    np.testing.assert_allclose(got, w)


def test_adam_and_adamw_match_torch_when_available():
    torch = pytest.importorskip("torch")
    for ours, theirs in ((optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)):
        tw = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        topt = theirs([tw], lr=0.1, weight_decay=0.05)
        for _ in range(3):
            topt.zero_grad()
            (tw * tw).sum().backward()
            topt.step()
        got = _quadratic_steps(ours, lr=0.1, weight_decay=0.05)
        np.testing.assert_allclose(got, tw.detach().numpy(), rtol=1e-6)


def test_update_rules_run_on_tensors_too():
    p, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    eager = rules.adam(p, g, np.zeros(2), np.zeros(2), 1, lr=0.1)
    traced = rules.adam(mlsys.tensor(p), mlsys.tensor(g), mlsys.tensor(np.zeros(2)),
                        mlsys.tensor(np.zeros(2)), 1, lr=0.1)
    for e, t in zip(eager, traced):
        np.testing.assert_allclose(e, t.numpy())


def test_optimizer_state_dict_round_trip():
    model = mlsys.models.mlp(hidden=4)
    opt = optim.Adam(model.parameters(), lr=0.01)
    mlsys.training.train_step(model, opt, mlsys.randn(3, 64), mlsys.tensor([0, 1, 2]))
    other = optim.Adam(model.parameters(), lr=0.5)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.01
    assert other.state[id(next(model.parameters()))]["step"] == 1


def test_optimizer_rejects_bad_input():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="learning rate must be >= 0, got -1"):
        optim.SGD(mlsys.models.mlp().parameters(), lr=-1)


def test_dataloader_batches_shuffles_reproducibly_and_drops_last():
    data = TensorDataset(np.arange(10), np.arange(10) * 2)
    batches = [x.tolist() for x, _ in DataLoader(data, batch_size=4)]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(DataLoader(data, batch_size=4, drop_last=True)) == 2
    one = [x.tolist() for x, _ in DataLoader(data, batch_size=3, shuffle=True, seed=7)]
    two = [x.tolist() for x, _ in DataLoader(data, batch_size=3, shuffle=True, seed=7)]
    assert one == two and sorted(sum(one, [])) == list(range(10)) and one[0] != [0, 1, 2]
    shard = [x.tolist() for x, _ in DataLoader(Subset(data, [1, 3]), batch_size=2)]
    assert shard == [[1, 3]]
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        DataLoader(data, batch_size=0)
    with pytest.raises(ValueError, match="different lengths"):
        TensorDataset(np.zeros(3), np.zeros(4))


def test_digits_split_is_disjoint_and_complete():
    train, test = load_digits("train"), load_digits("test")
    assert len(train) + len(test) == 1797
    assert train.arrays[0].dtype == np.float32 and train.arrays[0].max() <= 1.0
    assert load_digits("test", flatten=False).arrays[0].shape[1:] == (1, 8, 8)
    with pytest.raises(ValueError, match="split must be"):
        load_digits("validation")


def test_cross_entropy_names_bad_targets():
    logits = mlsys.randn(3, 4)
    with pytest.raises(ValueError, match=r"target shape \(2,\) does not match"):
        nn.functional.cross_entropy(logits, mlsys.tensor([1, 2]))
    with pytest.raises(IndexError, match="class index 7 is out of range for 4 classes"):
        nn.functional.cross_entropy(logits, mlsys.tensor([1, 2, 7]))
    with pytest.raises(TypeError, match="must be integers"):
        nn.functional.cross_entropy(logits, mlsys.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="reduction must be"):
        nn.functional.cross_entropy(logits, mlsys.tensor([1, 2, 0]), reduction="avg", label_smoothing=0.1)


# -- layers and losses PyTorch users reach for --------------------------------------------------

def test_batch_norm_trains_on_batch_statistics_and_evaluates_on_running_ones():
    bn = nn.BatchNorm2d(3, momentum=0.5)
    x = mlsys.tensor(np.random.default_rng(0).normal(2.0, 3.0, (8, 3, 4, 4)).astype(np.float32))
    out = bn(x).data
    np.testing.assert_allclose(out.mean((0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.var((0, 2, 3)), 1.0, rtol=1e-3)
    batch_mean, n = x.data.mean((0, 2, 3)), 8 * 4 * 4
    np.testing.assert_allclose(bn.running_mean.data, 0.5 * batch_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data, 0.5 + 0.5 * x.data.var((0, 2, 3)) * n / (n - 1),
                               rtol=1e-4)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    bn.eval()
    before = bn.running_mean.data.copy()
    expected = (x.data - before.reshape(1, 3, 1, 1)) / np.sqrt(
        bn.running_var.data.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(bn(x).data, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.data, before)  # evaluation leaves them alone
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected an input with 3 channels"):
        nn.BatchNorm1d(3)(mlsys.zeros(2, 4))
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm1d(3)(mlsys.zeros(1, 3))


def test_batch_norm_gradients_pass_gradcheck(rng):
    from mlsys.testing import gradcheck

    bn = nn.BatchNorm1d(3)
    for p in bn.parameters():
        p.data = p.data.astype(np.float64) + rng.normal(size=3)
    x = mlsys.Tensor(rng.normal(size=(5, 3)), requires_grad=True)
    assert gradcheck(lambda v: bn(v), x)


def test_module_list_identity_and_silu():
    layers = nn.ModuleList([nn.Linear(2, 3), nn.Identity()])
    layers.append(nn.SiLU())
    assert len(layers) == 3 and isinstance(layers[1], nn.Identity)
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias"]
    x = mlsys.tensor([[-1.0, 2.0]])
    for layer in layers:
        x = layer(x)
    h = layers[0](mlsys.tensor([[-1.0, 2.0]])).data
    np.testing.assert_allclose(x.data, h / (1 + np.exp(-h)), rtol=1e-6)
    with pytest.raises(TypeError, match="ModuleList: item 3 is a int, not a Module"):
        layers.append(3)


def test_pad_crops_with_negative_widths():
    x = mlsys.arange(6).reshape(2, 3).float()
    out = nn.functional.pad(x, (1, -1, 0, 1), value=9.0)
    np.testing.assert_array_equal(out.data, [[9, 0, 1], [9, 3, 4], [9, 9, 9]])
    with pytest.raises(ValueError, match="only mode='constant'"):
        nn.functional.pad(x, (1, 1), mode="reflect")


def test_binary_cross_entropy_is_finite_at_the_ends():
    p = mlsys.tensor([0.0, 0.5, 1.0], requires_grad=True)
    t = mlsys.tensor([0.0, 1.0, 1.0])
    loss = nn.functional.binary_cross_entropy(p, t, reduction="sum")
    assert loss.item() == pytest.approx(np.log(2), rel=1e-6)
    loss.backward()
    assert np.isfinite(p.grad.data).all()
    bad = nn.functional.binary_cross_entropy(mlsys.tensor([0.0]), mlsys.tensor([1.0])).item()
    assert bad == pytest.approx(100.0)  # log(0) is clamped at -100, as in PyTorch
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\], got 1.5"):
        nn.functional.binary_cross_entropy(mlsys.tensor([1.5]), mlsys.tensor([1.0]))


def test_cross_entropy_with_spatial_logits_and_probability_targets():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 4, 3))  # (N, C, d)
    y = rng.integers(0, 4, size=(2, 3))
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    picked = np.take_along_axis(logp, y[:, None], 1)[:, 0]
    loss = nn.functional.cross_entropy(mlsys.tensor(z), mlsys.tensor(y))
    assert loss.item() == pytest.approx(-picked.mean(), rel=1e-12)
    probs = np.exp(rng.normal(size=(2, 4, 3)))
    probs /= probs.sum(1, keepdims=True)
    soft = nn.functional.cross_entropy(mlsys.tensor(z), mlsys.tensor(probs), reduction="none")
    np.testing.assert_allclose(soft.data, -(probs * logp).sum(1), rtol=1e-12)
    onehot = np.eye(4)[y].transpose(0, 2, 1)
    as_probs = nn.functional.cross_entropy(mlsys.tensor(z), mlsys.tensor(onehot))
    assert as_probs.item() == pytest.approx(loss.item(), rel=1e-12)
