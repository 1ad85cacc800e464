"""Numba CPU kernels against numpy on random shapes, odd sizes included."""

from __future__ import annotations

import numpy as np
import pytest

import mlsys
from mlsys.kernels.cpu import matmul as mm
from mlsys.kernels.cpu import nn
from mlsys.kernels.cpu.elementwise import ufunc
from mlsys.nn import functional as F

# (n, k, m): a scalar product, odd sizes that leave partial tiles and padding, one full tile
SHAPES = [(1, 1, 1), (7, 13, 5), (33, 129, 66), (64, 64, 64)]


@pytest.mark.parametrize("stage", list(mm.STAGES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matmul_stages_match_numpy(stage: str, shape: tuple[int, int, int],
                                   rng: np.random.Generator) -> None:
    n, k, m = shape
    a = rng.standard_normal((n, k), dtype=np.float32)
    b = rng.standard_normal((k, m), dtype=np.float32)
    np.testing.assert_allclose(mm.matmul(a, b, stage), a @ b, rtol=1e-4, atol=1e-4)


def test_matmul_float64_and_strided_inputs(rng: np.random.Generator) -> None:
    a = rng.standard_normal((10, 6))
    b = rng.standard_normal((9, 6)).T  # a transposed view: not contiguous
    np.testing.assert_allclose(mm.matmul(a, b, "naive"), a @ b, rtol=1e-12)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(mm.matmul(a32, b32), a32 @ b32, rtol=1e-5, atol=1e-5)


def test_matmul_rejects_bad_input(rng: np.random.Generator) -> None:
    a = rng.standard_normal((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="unknown stage 'fast'"):
        mm.matmul(a, a.T, "fast")
    with pytest.raises(ValueError, match=r"\(3, 4\) @ \(3, 4\)"):
        mm.matmul(a, a)
    with pytest.raises(TypeError, match="float32 and float64"):
        mm.matmul(a, a.T.astype(np.float64))


@pytest.mark.parametrize("op", ["sum", "max"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 17, 1), (2, 5, 7), (1, 9, 130)], ids=str)
def test_reduce_middle_axis(op: str, shape: tuple[int, int, int], rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape, dtype=np.float32)
    np.testing.assert_allclose(nn.reduce3(x, op), getattr(x, op)(axis=1), rtol=1e-5, atol=1e-5)


def test_reduce_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="'argmax'"):
        nn.reduce3(np.ones((2, 2, 2), np.float32), "argmax")
    with pytest.raises(ValueError, match=r"\(2, 0, 2\)"):
        nn.reduce3(np.ones((2, 0, 2), np.float32), "sum")


@pytest.mark.parametrize("shape", [(1,), (5, 3), (2, 3, 31)], ids=str)
def test_softmax_and_log_softmax_rows(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    x = (30 * rng.standard_normal(shape)).astype(np.float32)  # large values: needs the max shift
    z = x.astype(np.float64) - x.max(-1, keepdims=True)
    log_expected = z - np.log(np.exp(z).sum(-1, keepdims=True))
    np.testing.assert_allclose(nn.softmax_rows(x), np.exp(log_expected), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(nn.log_softmax_rows(x), log_expected, rtol=1e-5, atol=1e-4)
    assert np.isfinite(nn.softmax_rows(np.array([1e4, 0], np.float32))).all()


def test_layer_norm_rows_matches_functional(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 3, 11), dtype=np.float32)
    w, b = rng.standard_normal(11, dtype=np.float32), rng.standard_normal(11, dtype=np.float32)
    expected = F.layer_norm(mlsys.tensor(x), 11, mlsys.tensor(w), mlsys.tensor(b)).data
    np.testing.assert_allclose(nn.layer_norm_rows(x, w, b), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(11,\)"):
        nn.layer_norm_rows(x, w[:3], b)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_conv2d_matches_im2col(stride: int, padding: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 9, 8), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 2), dtype=np.float32)
    expected = F.conv2d(mlsys.tensor(x), mlsys.tensor(w), stride=stride, padding=padding).data
    np.testing.assert_allclose(nn.conv2d(x, w, stride, padding), expected, rtol=1e-4, atol=1e-4)


def test_conv2d_rejects_bad_input() -> None:
    x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        nn.conv2d(x, w)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        nn.conv2d(x, w[:, :, :3, :3], stride=0)
    with pytest.raises(ValueError, match="equal C"):
        nn.conv2d(x, np.ones((1, 3, 3, 3), np.float32))


UFUNC_REFERENCES = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "maximum": np.maximum, "neg": np.negative, "exp": np.exp, "log": np.log, "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}


@pytest.mark.parametrize("name", sorted(UFUNC_REFERENCES))
def test_ufuncs_match_numpy_with_broadcasting(name: str, rng: np.random.Generator) -> None:
    a = rng.uniform(0.5, 2.0, (3, 1, 5)).astype(np.float32)
    b = rng.uniform(0.5, 2.0, (4, 1)).astype(np.float32)
    kernel = ufunc(name, np.float32)
    args = (a, b) if kernel.nin == 2 else (a if name == "log" else a - 1,)
    np.testing.assert_allclose(kernel(*args), UFUNC_REFERENCES[name](*args), rtol=1e-5, atol=1e-6)
