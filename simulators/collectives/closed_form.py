"""The textbook all-reduce times with uncontended links (Thakur, Rabenseifner & Gropp, IJHPCA
2005): what :func:`simulators.collectives.simulate` must reproduce on an uncontended topology."""

from __future__ import annotations

import math


def alpha_beta(algorithm: str, world_size: int, nbytes: float, alpha: float, beta: float,
               gamma: float = 0.0) -> float:
    """Textbook all-reduce time on ``p`` ranks of ``n`` bytes with uncontended links (Thakur,
    Rabenseifner & Gropp 2005): ``alpha`` seconds per message, ``beta`` per byte sent, ``gamma``
    per byte reduced. The power-of-two algorithms need ``p`` a power of two."""
    p, n = world_size, nbytes
    if p < 2:
        raise ValueError(f"alpha_beta: world_size must be >= 2, got {p!r}")
    log_p = math.log2(p)
    if algorithm in ("recursive_doubling", "halving_doubling") and not log_p.is_integer():
        raise ValueError(f"alpha_beta: {algorithm} needs a power-of-two world size, got {p}")
    frac = (p - 1) / p
    forms = {
        "ring": 2 * (p - 1) * alpha + 2 * frac * n * beta + frac * n * gamma,
        "recursive_doubling": log_p * (alpha + n * beta + n * gamma),
        "halving_doubling": 2 * log_p * alpha + 2 * frac * n * beta + frac * n * gamma,
        "direct": 2 * alpha + 2 * n / p * beta + frac * n * gamma,
    }
    if algorithm not in forms:
        raise ValueError(f"alpha_beta: no closed form for {algorithm!r}; expected one of "
                         f"{sorted(forms)}")
    return forms[algorithm]
