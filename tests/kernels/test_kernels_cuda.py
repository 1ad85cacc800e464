"""CUDA kernels against numpy: on a GPU when there is one, else in Numba's CUDA simulator.

Shapes are tiny and odd (partial tiles, partial warps): the simulator runs each CUDA thread as a
Python thread, about a second per 256-thread block.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mlsys.kernels.cuda import elementwise, matmul, reduce, transpose


@pytest.mark.parametrize("stage", list(matmul.STAGES))
def test_matmul_stages_match_numpy(stage: str, rng: np.random.Generator) -> None:
    a = rng.standard_normal((9, 13), dtype=np.float32)
    b = rng.standard_normal((13, 11), dtype=np.float32)
    np.testing.assert_allclose(matmul.matmul(a, b, stage, tile=8), a @ b, rtol=1e-4, atol=1e-4)


def test_matmul_rejects_bad_input() -> None:
    a = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="unknown stage 'blas'"):
        matmul.matmul(a, a, "blas")
    with pytest.raises(TypeError, match="float64"):
        matmul.matmul(a, a.astype(np.float64))
    with pytest.raises(ValueError, match="multiple of 4, got 6"):
        matmul.register_kernel(6)


@pytest.mark.parametrize("method", ["tree", "warp"])
@pytest.mark.parametrize("size", [1, 45, 130])
def test_total_matches_numpy(method: str, size: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal(size, dtype=np.float32)
    np.testing.assert_allclose(reduce.total(x, method), x.sum(dtype=np.float64), rtol=1e-5, atol=1e-5)


def test_softmax_is_stable_and_matches_numpy(rng: np.random.Generator) -> None:
    x = (50 * rng.standard_normal((3, 45))).astype(np.float32)
    shifted = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(reduce.softmax(x), shifted / shifted.sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        reduce.softmax(np.ones(3, np.float32))


@pytest.mark.parametrize("method", ["naive", "coalesced"])
def test_transpose(method: str, rng: np.random.Generator) -> None:
    a = rng.standard_normal((33, 20), dtype=np.float32)  # two row tiles, the second one row deep
    np.testing.assert_array_equal(transpose.transpose(a, method), a.T)


def test_elementwise_and_fused_bias_relu(rng: np.random.Generator) -> None:
    x = rng.standard_normal((5, 7), dtype=np.float32)
    bias = rng.standard_normal(7, dtype=np.float32)
    np.testing.assert_allclose(elementwise.apply("sub", x, bias), x - bias, rtol=1e-6)
    np.testing.assert_allclose(elementwise.apply("exp", x), np.exp(x), rtol=1e-5)
    np.testing.assert_allclose(elementwise.bias_relu(x, bias), np.maximum(x + bias, 0), rtol=1e-6)
    with pytest.raises(ValueError, match="no CUDA scalar function for 'erf'"):
        elementwise.apply("erf", x)


def test_simulator_switch_does_not_leak_into_the_environment() -> None:
    code = ("import os, mlsys.kernels.cuda.runtime as r; "
            "print(r.SIMULATOR, r.gpu_present(), 'NUMBA_ENABLE_CUDASIM' in os.environ)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out[2] == "False"
    assert out[0] == str(out[1] == "False")  # the simulator exactly when there is no driver
