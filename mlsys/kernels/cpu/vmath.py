"""``exp`` that Numba can vectorize, for kernels whose time would otherwise go to ``math.exp``.

Numba compiles ``math.exp`` to a call into the C library, one element at a time: without Intel's
SVML (which Numba uses only when it is installed) a loop containing it never becomes SIMD code,
and on float32 data that call costs several times more than moving the element's bytes.
:func:`exp` is plain arithmetic instead (Cody & Waite's range reduction and a polynomial, as in
Cephes' ``expf``): ``x = k ln 2 + r`` with ``|r| <= ln(2) / 2``, ``e^r`` by a degree-6
polynomial, and ``2^k`` written straight into floats' exponent bits. The compiler turns a loop
of it into vector instructions. float32 results are within one unit in the last place of the
exact value; results below float32's smallest normal number flush to 0 (as ``-inf`` does),
overflow gives ``inf`` and NaN stays NaN. float64 calls ``math.exp``, whose accuracy this
polynomial does not reach.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic, overload

__all__ = ["exp"]

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


@njit(cache=True, fastmath={"contract", "afn", "arcp"})  # FMAs, but NaN and inf keep their
def _exp32(x):  # meaning inside fastmath kernels; the loop still vectorizes (selects, no branches)
    clamped = min(max(x, _LOWEST), _HIGHEST)
    k = math.floor(clamped * _LOG2E + np.float32(0.5))
    r = clamped - k * _LN2_HI - k * _LN2_LO
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    # 2^k in two halves, each a normal float32 for every k here (-126..128)
    n = np.int64(k)
    half = n >> 1
    e = ((p * r * r + r + np.float32(1)) * _float32_from_bits((half + 127) << 23)
         * _float32_from_bits((n - half + 127) << 23))
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
