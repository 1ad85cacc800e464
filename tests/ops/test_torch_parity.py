"""The engine against PyTorch itself, where PyTorch is installed (CI does not install it).

Each case runs the same function in both, on the same float64 inputs (kinks, ties, zeros and
infinities included on purpose): outputs, dtypes, first gradients and second gradients (the
gradient of <v, gradient>) must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlsys
from mlsys.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

R = np.random.default_rng(0)
X = R.standard_normal((3, 4))
KINKS = np.array([[0.0, 1.0, -1.0, 2.0], [0.0, 0.0, 3.0, -2.0], [1.5, -0.5, 0.0, 1.0]])
PROBS = np.array([[0.0, 0.3, 1.0, 0.5], [0.2, 0.9, 0.1, 0.6], [1.0, 0.0, 0.4, 0.7]])
INDEX = np.array([[0, 2, 1, 3], [3, 3, 0, 1], [2, 0, 0, 1]])

# name -> (function on the engine, function on torch, inputs); both get Tensors of their library
CASES = {
    "pow_at_zero": (lambda a: a ** 2 + a.abs() ** 0.5 * 0 + (a * 0) ** 0,
                    lambda a: a ** 2 + a.abs() ** 0.5 * 0 + (a * 0) ** 0, [KINKS]),
    "pow_exponent_at_zero": (lambda a, b: a.abs() ** b, lambda a, b: a.abs() ** b, [KINKS, X]),
    "abs_sign": (lambda a: a.abs() + a.sign() * a, lambda a: a.abs() + a.sign() * a, [KINKS]),
    "maximum_minimum_ties": (lambda a, b: mlsys.maximum(a, b) * 2 + mlsys.minimum(a, b),
                             lambda a, b: torch.maximum(a, b) * 2 + torch.minimum(a, b),
                             [KINKS, np.clip(KINKS, 0, 1)]),
    "relu_at_zero": (F.relu, TF.relu, [KINKS]),
    "clamp_at_bounds": (lambda a: a.clamp(-1, 1), lambda a: a.clamp(-1, 1), [KINKS]),
    "masked_fill": (lambda a: a.masked_fill(a > 0.5, 2.0), lambda a: a.masked_fill(a > 0.5, 2.0), [X]),
    "amax_ties": (lambda a: a.amax(1), lambda a: a.amax(1), [KINKS]),
    "max_dim": (lambda a: a.max(1).values * 1 + a.max(1).indices,
                lambda a: a.max(1).values * 1 + a.max(1).indices, [X]),
    "min_dim_keepdim": (lambda a: a.min(0, keepdim=True).values,
                        lambda a: a.min(0, keepdim=True).values, [X]),
    "max_all": (lambda a: a.max(), lambda a: a.max(), [KINKS]),
    "prod_with_zeros": (lambda a: a.prod(1), lambda a: a.prod(1), [KINKS]),
    "cumsum": (lambda a: a.cumsum(0), lambda a: a.cumsum(0), [X]),
    "sort": (lambda a: a.sort(1, descending=True).values, lambda a: a.sort(1, descending=True).values, [X]),
    "topk": (lambda a: a.topk(2, 1).values, lambda a: a.topk(2, 1).values, [X]),
    "gather": (lambda a, i: a.gather(1, i), lambda a, i: a.gather(1, i), [X, INDEX[:, :2]]),
    "std": (lambda a: a.std(1) + a.std(), lambda a: a.std(1) + a.std(), [X]),
    "split_chunk": (lambda a: a.split(3, 1)[1].sum() + a.chunk(2, 0)[0].sum(),
                    lambda a: a.split(3, 1)[1].sum() + a.chunk(2, 0)[0].sum(), [X]),
    "silu": (F.silu, TF.silu, [X]),
    "gelu": (F.gelu, TF.gelu, [X]),
    "gelu_tanh": (lambda a: F.gelu(a, approximate="tanh"), lambda a: TF.gelu(a, approximate="tanh"), [X]),
    "sigmoid_far_out": (lambda a: (a * 30).sigmoid(), lambda a: (a * 30).sigmoid(), [X]),
    "pad": (lambda a: F.pad(a, (1, -2, 2, 0), value=0.5), lambda a: TF.pad(a, (1, -2, 2, 0), value=0.5), [X]),
    "softmax_empty": (lambda a: a[:0].softmax(1), lambda a: a[:0].softmax(1), [X]),
    "log_softmax": (lambda a: a.log_softmax(0), lambda a: a.log_softmax(0), [X]),
    "binary_cross_entropy": (lambda p, t: F.binary_cross_entropy(p, t),
                             lambda p, t: TF.binary_cross_entropy(p, t),
                             [np.clip(PROBS, 0.05, 0.95), PROBS[::-1].copy()]),
    # second derivatives at p = 0 or 1 are 1/eps^2-sized noise in both: first derivatives only
    "binary_cross_entropy_at_0_and_1": (lambda p, t: F.binary_cross_entropy(p, t, reduction="sum"),
                                        lambda p, t: TF.binary_cross_entropy(p, t, reduction="sum"),
                                        [PROBS, PROBS[::-1].copy()]),
    "cross_entropy_spatial": (
        lambda z, y: F.cross_entropy(z.reshape(1, 3, 2, 2), y),
        lambda z, y: TF.cross_entropy(z.reshape(1, 3, 2, 2), y), [X, INDEX[:1, :4].reshape(1, 2, 2) % 3]),
    "cross_entropy_probabilities": (
        lambda z, p: F.cross_entropy(z, p.softmax(1), label_smoothing=0.2),
        lambda z, p: TF.cross_entropy(z, p.softmax(1), label_smoothing=0.2),
        [X, R.standard_normal((3, 4))]),
    "cross_entropy_smoothed": (lambda z, y: F.cross_entropy(z, y, reduction="sum", label_smoothing=0.1),
                               lambda z, y: TF.cross_entropy(z, y, reduction="sum", label_smoothing=0.1),
                               [X, INDEX[:, 0]]),
    "nll_loss": (lambda z, y: F.nll_loss(z.log_softmax(1), y),
                 lambda z, y: TF.nll_loss(z.log_softmax(1), y), [X, INDEX[:, 1]]),
    "where": (lambda a, b: mlsys.where(a > b, a, b * 2), lambda a, b: torch.where(a > b, a, b * 2),
              [X, KINKS]),
    "batch_norm_train": (lambda a: F.batch_norm(a.reshape(3, 2, 2), None, None, training=True),
                         lambda a: TF.batch_norm(a.reshape(3, 2, 2), None, None, training=True), [X]),
}


def _to_mlsys(x: np.ndarray) -> mlsys.Tensor:
    return mlsys.tensor(x, requires_grad=x.dtype.kind == "f")


def _to_torch(x: np.ndarray):
    return torch.tensor(x, requires_grad=x.dtype.kind == "f")


def _close(ours, theirs, what: str) -> None:
    theirs = theirs.detach().numpy()
    assert np.asarray(ours).shape == theirs.shape, what
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), theirs, rtol=1e-7, atol=1e-9,
                               err_msg=what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_two_derivatives_match_pytorch(name: str) -> None:
    ours_fn, theirs_fn, arrays = CASES[name]
    ours_in, theirs_in = [_to_mlsys(a) for a in arrays], [_to_torch(a) for a in arrays]
    ours, theirs = ours_fn(*ours_in), theirs_fn(*theirs_in)
    _close(ours.data, theirs, f"{name}: forward")
    if not theirs.requires_grad or theirs.numel() == 0:
        return
    cot = np.random.default_rng(1).standard_normal(theirs.shape)
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    ours_g = mlsys.autograd.grad(ours, [ours_in[i] for i in wrt], mlsys.tensor(cot), create_graph=True,
                                 allow_unused=True)
    theirs_g = torch.autograd.grad(theirs, [theirs_in[i] for i in wrt], torch.tensor(cot),
                                   create_graph=True, allow_unused=True)
    for k, (a, b) in enumerate(zip(ours_g, theirs_g)):
        if b is None:
            assert a is None or not a.data.any(), f"{name}: gradient {k}"
            continue
        _close(a.data, b, f"{name}: gradient {k}")
    if name == "binary_cross_entropy_at_0_and_1":
        return
    direction = np.random.default_rng(2).standard_normal(np.shape(arrays[wrt[0]]))
    ours_s = sum(((g * mlsys.tensor(direction)).sum() for g in ours_g[:1]
                  if g is not None and g.requires_grad), mlsys.tensor(0.0, dtype=np.float64))
    theirs_s = sum(((g * torch.tensor(direction)).sum() for g in theirs_g[:1]
                    if g is not None and g.requires_grad), torch.tensor(0.0, dtype=torch.float64))
    if not ours_s.requires_grad:  # our gradient is constant: theirs must have zero derivative
        if theirs_s.requires_grad:
            for b in torch.autograd.grad(theirs_s, [theirs_in[i] for i in wrt], allow_unused=True):
                assert b is None or not b.any(), f"{name}: second derivative"
        return
    ours_h = mlsys.autograd.grad(ours_s, [ours_in[i] for i in wrt], allow_unused=True)
    theirs_h = torch.autograd.grad(theirs_s, [theirs_in[i] for i in wrt], allow_unused=True)
    for k, (a, b) in enumerate(zip(ours_h, theirs_h)):
        if b is None or a is None:
            assert (a is None or not a.data.any()) and (b is None or not b.any()), f"{name}: second {k}"
            continue
        _close(a.data, b, f"{name}: second derivative {k}")


@pytest.mark.parametrize("expression", [
    "x / 2", "x * 2.5", "x + 1", "b + 1", "b * 1.5", "i32 + 5", "i32 * 2.5", "f32 + f64_0d",
    "x + f64_0d", "x * f32", "f32 * f64", "x.sum()", "i32.sum()", "i32.prod()", "x.cumsum(0)",
    "f32 + True", "b + b",
])
def test_dtype_promotion_matches_pytorch(expression: str) -> None:
    values = {"x": np.array([1, 3]), "b": np.array([True, False]), "i32": np.array([1, 2], np.int32),
              "f32": np.array([1.5, 2.0], np.float32), "f64": np.array([1.5, 2.0]),
              "f64_0d": np.array(2.0)}
    ours = eval(expression, {k: mlsys.tensor(v) for k, v in values.items()})
    theirs = eval(expression, {k: torch.tensor(v) for k, v in values.items()})
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), expression
    np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_running_statistics_match_pytorch() -> None:
    x = R.standard_normal((8, 3, 2, 2)).astype(np.float32)
    ours, theirs = mlsys.nn.BatchNorm2d(3, momentum=0.3), torch.nn.BatchNorm2d(3, momentum=0.3)
    for _ in range(2):
        out, ref = ours(mlsys.tensor(x)), theirs(torch.tensor(x))
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-5)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(mlsys.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
