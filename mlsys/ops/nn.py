"""Neural-network primitives: softmax, log_softmax, one_hot, the negative log-likelihood and binary
cross-entropy losses, im2col (unfold2d) and its adjoint (fold2d), and the random dropout mask.
Convolution and pooling are built from unfold2d."""

from __future__ import annotations

import numpy as np

from .. import random
from ._rules import broadcast_spec, elementwise_cost, require_float, require_integer
from .elementwise import _grads, constant, div, exp, log, maximum, mul, sub
from .reduce import sum
from .registry import Cost, Primitive, Spec, register


def _axis_spec(name):
    def shape(x: Spec, *, axis: int) -> Spec:
        require_float(name, x)
        if not 0 <= axis < len(x.shape):
            raise ValueError(f"{name}: axis {axis} is out of range for a tensor of shape {x.shape}")
        return x

    return shape


def _softmax_forward(x: np.ndarray, *, axis: int) -> np.ndarray:
    if x.size == 0:
        return x.copy()
    e = np.exp(x - np.maximum.reduce(x, axis=axis, keepdims=True))
    return e / np.add.reduce(e, axis=axis, keepdims=True)


def _log_softmax_forward(x: np.ndarray, *, axis: int) -> np.ndarray:
    if x.size == 0:
        return x.copy()
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    return shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))


softmax = register(Primitive(
    "softmax", forward=_softmax_forward, shape=_axis_spec("softmax"), cost=elementwise_cost(5),
    vjp=lambda g, out, x, *, axis: (
        mul(out, sub(g, sum(mul(g, out), axis=(axis,), keepdims=True))),),
    arity=1, doc="exp(x) / sum(exp(x)) along `axis`, computed stably"))

log_softmax = register(Primitive(
    "log_softmax", forward=_log_softmax_forward, shape=_axis_spec("log_softmax"),
    cost=elementwise_cost(5),
    vjp=lambda g, out, x, *, axis: (
        sub(g, mul(exp(out), sum(g, axis=(axis,), keepdims=True))),),
    arity=1, doc="x - logsumexp(x) along `axis`, computed stably"))


def _check_targets(name: str, target: np.ndarray, classes: int) -> None:
    if target.size and (target.min() < 0 or target.max() >= classes):
        bad = target[(target < 0) | (target >= classes)].flat[0]
        raise IndexError(f"{name}: class index {bad} is out of range for {classes} classes")


def _one_hot_forward(idx: np.ndarray, *, num_classes: int, dtype: np.dtype) -> np.ndarray:
    _check_targets("one_hot", idx, num_classes)
    return np.eye(num_classes, dtype=dtype)[idx]


def _one_hot_shape(idx: Spec, *, num_classes: int, dtype: np.dtype) -> Spec:
    require_integer("one_hot", "class indices", idx)
    return Spec(idx.shape + (num_classes,), np.dtype(dtype))


one_hot = register(Primitive(
    "one_hot", forward=_one_hot_forward, shape=_one_hot_shape, cost=elementwise_cost(0), arity=1,
    doc="integer class indices to one-hot rows (not differentiable)"))


def _picked(target: np.ndarray) -> tuple:
    """The index of ``logp[n, target[n, ...], ...]`` for every sample and position."""
    if target.ndim == 1:
        return np.arange(len(target)), target
    grid = list(np.indices(target.shape, sparse=True))
    return (grid[0], target, *grid[1:])


def _nll_forward(logp: np.ndarray, target: np.ndarray, *, reduction: str) -> np.ndarray:
    _check_targets("nll_loss", target, logp.shape[1])
    picked = -logp[_picked(target)]
    if reduction == "none":
        return picked
    total = np.add.reduce(picked, axis=None)
    return np.asarray(total if reduction == "sum" else total / max(picked.size, 1), dtype=logp.dtype)


def _nll_shape(logp: Spec, target: Spec, *, reduction: str) -> Spec:
    require_float("nll_loss", logp)
    if len(logp.shape) < 2:
        raise ValueError(f"nll_loss: expected (N, C) or (N, C, d1, ...) log-probabilities, got "
                         f"shape {logp.shape}")
    require_integer("nll_loss", "class indices", target)
    expected = logp.shape[:1] + logp.shape[2:]
    if target.shape != expected:
        raise ValueError(f"nll_loss: target shape {target.shape} does not match log-probabilities "
                         f"{logp.shape} (expected {expected})")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return Spec(expected if reduction == "none" else (), logp.dtype)


def _nll_grad_forward(g: np.ndarray, target: np.ndarray, *, classes: int, reduction: str) -> np.ndarray:
    out = np.zeros(target.shape[:1] + (classes,) + target.shape[1:], dtype=g.dtype)
    scale = -1.0 / max(target.size, 1) if reduction == "mean" else -1.0
    out[_picked(target)] = scale * g
    return out


nll_loss_grad = register(Primitive(
    "nll_loss_grad", forward=_nll_grad_forward,
    shape=lambda g, target, *, classes, reduction: Spec(
        target.shape[:1] + (classes,) + target.shape[1:], g.dtype),
    cost=lambda g, target, *, out, classes, reduction: Cost(target.size, target.nbytes + out.nbytes),
    # linear in g, and its adjoint is nll_loss itself
    vjp=lambda g, out, cot, target, *, classes, reduction: (
        nll_loss(g, target, reduction=reduction), None),
    arity=2, doc="gradient of nll_loss with respect to its log-probabilities"))

nll_loss = register(Primitive(
    "nll_loss", forward=_nll_forward, shape=_nll_shape,
    cost=lambda logp, target, *, out, reduction: Cost(target.size, target.nbytes + out.nbytes
                                                      + target.size * logp.dtype.itemsize),
    vjp=lambda g, out, logp, target, *, reduction: (
        nll_loss_grad(g, target, classes=logp.shape[1], reduction=reduction), None),
    arity=2, doc="negative log-likelihood of integer targets (N, d...) under (N, C, d...) "
                 "log-probabilities"))


def _bce_forward(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    if p.size and (p.min() < 0 or p.max() > 1):  # NaN passes, as in PyTorch
        bad = p[(p < 0) | (p > 1)].flat[0]
        raise ValueError(f"binary_cross_entropy: input must be probabilities in [0, 1], got {bad}")
    with np.errstate(divide="ignore"):  # log(0) is -inf, clamped to -100 as in PyTorch
        return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))


def _bce_shape(p: Spec, t: Spec) -> Spec:
    require_float("binary_cross_entropy", p)
    require_float("binary_cross_entropy", t)
    return broadcast_spec("binary_cross_entropy", p, t)


def _bce_vjp(g, out, p, t):
    """PyTorch's rule: d/dp = (p - t) / max(p (1 - p), 1e-12); d/dt = log(1 - p) - log(p)."""
    one, eps = constant(p, 1), constant(p, 1e-12)
    return _grads([
        (p, lambda: mul(g, div(sub(p, t), maximum(mul(p, sub(one, p)), eps)))),
        (t, lambda: mul(g, sub(log(sub(one, p)), log(p)))),
    ])


binary_cross_entropy = register(Primitive(
    "binary_cross_entropy", forward=_bce_forward, shape=_bce_shape, cost=elementwise_cost(8),
    vjp=_bce_vjp, arity=2,
    doc="elementwise -(t log p + (1 - t) log(1 - p)), each log clamped at -100 (PyTorch's); it "
        "checks that p holds probabilities, so it runs as numpy on every device"))


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _unfold_shape(x: Spec, *, kernel_size, stride, padding) -> Spec:
    if len(x.shape) != 4:
        raise ValueError(f"unfold2d: expected an (N, C, H, W) tensor, got shape {x.shape}")
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if ho < 1 or wo < 1:
        raise ValueError(f"unfold2d: kernel {kernel_size} with padding {padding} does not fit an "
                         f"input of spatial size {(h, w)}")
    return Spec((n, c * kh * kw, ho * wo), x.dtype)


def _unfold_forward(x: np.ndarray, *, kernel_size, stride, padding) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, c, ho, wo = windows.shape[:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def _fold_forward(cols: np.ndarray, *, input_size, kernel_size, stride, padding) -> np.ndarray:
    (h, w), (kh, kw), (sh, sw), (ph, pw) = input_size, kernel_size, stride, padding
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    patches = cols.reshape(n, c, kh, kw, ho, wo)
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw] += patches[:, :, i, j]
    return out[:, :, ph:ph + h, pw:pw + w]


def _fold_shape(cols: Spec, *, input_size, kernel_size, stride, padding) -> Spec:
    (h, w), (kh, kw) = input_size, kernel_size
    n, ckk, _ = cols.shape
    if ckk % (kh * kw):
        raise ValueError(f"fold2d: {ckk} rows is not a multiple of the kernel area {kh * kw}")
    return Spec((n, ckk // (kh * kw), h, w), cols.dtype)


unfold2d = register(Primitive(
    "unfold2d", forward=_unfold_forward, shape=_unfold_shape,
    cost=lambda x, *, out, **p: Cost(0, x.nbytes + out.nbytes),
    vjp=lambda g, out, x, *, kernel_size, stride, padding: (fold2d(
        g, input_size=x.shape[2:], kernel_size=kernel_size, stride=stride, padding=padding),),
    arity=1, doc="im2col: every (kh, kw) window of an (N, C, H, W) tensor as a column of (N, C*kh*kw, L)"))

fold2d = register(Primitive(
    "fold2d", forward=_fold_forward, shape=_fold_shape,
    cost=lambda cols, *, out, **p: Cost(cols.size, cols.nbytes + 2 * out.nbytes),
    vjp=lambda g, out, cols, *, input_size, kernel_size, stride, padding: (unfold2d(
        g, kernel_size=kernel_size, stride=stride, padding=padding),),
    arity=1, doc="col2im: sum columns back into overlapping windows (the adjoint of unfold2d)"))


def _dropout_mask_forward(*, shape, p: float, dtype) -> np.ndarray:
    keep = random.generator().random(shape) >= p
    return keep.astype(dtype) / np.asarray(1.0 - p, dtype=dtype)


def _dropout_mask_shape(*, shape, p: float, dtype) -> Spec:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: probability must be in [0, 1), got {p}")
    return Spec(tuple(shape), np.dtype(dtype))


dropout_mask = register(Primitive(
    "dropout_mask", forward=_dropout_mask_forward, shape=_dropout_mask_shape,
    cost=lambda *, out, **p: Cost(out.size, out.nbytes), arity=0, pure=False,
    doc="random keep-mask scaled by 1/(1-p) (impure: every call draws anew)"))


_DRAWS = {"uniform": lambda gen, shape: gen.random(shape),
          "normal": lambda gen, shape: gen.standard_normal(shape)}


def _random_shape(*, shape, dtype, distribution: str) -> Spec:
    if distribution not in _DRAWS:
        raise ValueError(f"random: distribution must be one of {sorted(_DRAWS)}, got {distribution!r}")
    return Spec(tuple(shape), np.dtype(dtype))


random_draw = register(Primitive(
    "random",
    forward=lambda *, shape, dtype, distribution: _DRAWS[distribution](
        random.generator(), shape).astype(dtype),
    shape=_random_shape, cost=lambda *, out, **p: Cost(out.size, out.nbytes), arity=0, pure=False,
    doc="samples of `distribution` (uniform [0, 1) or standard normal) from the global generator "
        "(impure: every call draws anew)"))
