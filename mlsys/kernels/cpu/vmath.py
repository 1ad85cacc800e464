"""``exp``, ``tanh`` and ``erf`` that Numba can vectorize, for kernels whose time would otherwise
go to the C library's scalar functions.

Numba compiles ``math.exp`` to a call into the C library, one element at a time: without Intel's
SVML (which Numba uses only when it is installed) a loop containing it never becomes SIMD code,
and on float32 data that call costs several times more than moving the element's bytes.
The float32 versions here are plain arithmetic, branch-free (selects), so that the compiler turns
a loop of them into vector instructions; float64 calls keep the C library's functions, whose
accuracy these polynomials do not reach.

:func:`exp` is (Cody & Waite's range reduction and a polynomial, as in
Cephes' ``expf``): ``x = k ln 2 + r`` with ``|r| <= ln(2) / 2``, ``e^r`` by a degree-6
polynomial, and ``2^k`` written straight into floats' exponent bits, all in float32 arithmetic.
Results are within 1.01 units in the last place of the exact value (the tests measure it over
the whole range); results below float32's smallest normal number flush to 0 (as ``-inf`` does),
overflow gives ``inf`` and NaN stays NaN.

:func:`tanh` is the rational minimax approximation Eigen uses for float ``tanh`` (a degree-13 odd
numerator over a degree-6 even denominator of ``x`` clamped to +-7.905, beyond which tanh rounds
to +-1): absolute error below 4e-7 (the tests check it against numpy).

:func:`erf` is the rational approximation of Eigen and XLA for float ``erf`` (a degree-13 odd
numerator over a degree-8 even denominator of ``x`` clamped to +-4, beyond which erf rounds to
+-1): absolute error below 3e-7.

Each keeps IEEE's special values: ``+-inf`` goes to the function's limit and NaN stays NaN (the
clamps compare with the argument first, which Numba's ``max`` returns when unordered).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic, overload

__all__ = ["exp", "tanh", "erf"]

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 split in two so that k * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)
_LOWEST = np.float32(-87.33654)  # below: e^x under float32's smallest normal number
_HIGHEST = np.float32(88.72283)  # above: e^x overflows
# Cephes expf's coefficients for (e^r - 1 - r) / r^2, highest power first
_P0, _P1, _P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_P3, _P4, _P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the low 32 bits of integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


_BIAS, _MANTISSA = np.int32(127), np.int32(23)


@njit(cache=True, fastmath={"contract", "afn", "arcp"})  # FMAs, but NaN and inf keep their
def _exp32(x):  # meaning inside fastmath kernels; the loop still vectorizes (selects, no branches)
    clamped = min(max(x, _LOWEST), _HIGHEST)
    # np.floor, not math.floor: math.floor returns an integer, and the arithmetic with it below
    # would run in float64 (half as many lanes per vector, and conversions both ways)
    k = np.floor(clamped * _LOG2E + np.float32(0.5))
    r = clamped - k * _LN2_HI - k * _LN2_LO
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    # 2^k in two halves, each a normal float32 for every k here (-126..128)
    n = np.int32(k)
    half = n >> 1
    e = ((p * r * r + r + np.float32(1)) * _float32_from_bits((half + _BIAS) << _MANTISSA)
         * _float32_from_bits((n - half + _BIAS) << _MANTISSA))
    # x - x is 0, or NaN for a NaN x: NaN in, NaN out
    return np.float32(0) if x < _LOWEST else (np.float32(np.inf) if x > _HIGHEST else e + (x - x))


def exp(x: float) -> float:
    """``e ** x``; call it from Numba-compiled code, where float32 arguments get the vectorizable
    version (see the module doc)."""
    return math.exp(x)


@overload(exp)
def _exp(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    return lambda x: math.exp(x)


# Eigen's float tanh: numerator (odd, by x^2 powers, highest first) and denominator (even)
_TANH_CLAMP = np.float32(7.90531110763549805)
_TANH_P = tuple(np.float32(c) for c in (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_TANH_Q = tuple(np.float32(c) for c in (
    1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))
# Eigen's (and XLA's) float erf, the same layout
_ERF_CLAMP = np.float32(4.0)
_ERF_P = tuple(np.float32(c) for c in (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02))
_ERF_Q = tuple(np.float32(c) for c in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
    -1.42647390514189e-02))


# error_model="numpy": the division needs no zero check (q never vanishes), so the loop vectorizes
@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _tanh32(x):
    v = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    v2 = v * v
    p = ((((((_TANH_P[0] * v2 + _TANH_P[1]) * v2 + _TANH_P[2]) * v2 + _TANH_P[3]) * v2
            + _TANH_P[4]) * v2 + _TANH_P[5]) * v2 + _TANH_P[6])
    q = ((_TANH_Q[0] * v2 + _TANH_Q[1]) * v2 + _TANH_Q[2]) * v2 + _TANH_Q[3]
    # at the clamp the quotient is 4 ulp short of 1, where float32 tanh is exactly +-1
    return np.float32(1) if x >= _TANH_CLAMP else (np.float32(-1) if x <= -_TANH_CLAMP else v * p / q)


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _erf32(x):
    v = min(max(x, -_ERF_CLAMP), _ERF_CLAMP)
    v2 = v * v
    p = ((((((_ERF_P[0] * v2 + _ERF_P[1]) * v2 + _ERF_P[2]) * v2 + _ERF_P[3]) * v2
            + _ERF_P[4]) * v2 + _ERF_P[5]) * v2 + _ERF_P[6])
    q = (((_ERF_Q[0] * v2 + _ERF_Q[1]) * v2 + _ERF_Q[2]) * v2 + _ERF_Q[3]) * v2 + _ERF_Q[4]
    return v * p / q


def tanh(x: float) -> float:
    """Hyperbolic tangent; vectorizable on float32 in Numba-compiled code (see the module doc)."""
    return math.tanh(x)


def erf(x: float) -> float:
    """The error function; vectorizable on float32 in Numba-compiled code (see the module doc)."""
    return math.erf(x)


@overload(tanh)
def _tanh(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: math.tanh(x)


@overload(erf)
def _erf(x):
    if x == types.float32:
        return lambda x: _erf32(x)
    return lambda x: math.erf(x)
