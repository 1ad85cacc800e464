"""Deterministic traffic splitting: a user's arm is a hash of the experiment's salt and the user's id.

Experimentation platforms assign by hashing rather than by drawing: the same user gets the same arm
on every visit and every server without any stored state, and experiments with different salts
split the users independently of one another. The hash here is SplitMix64's finalizer (Steele, Lea
and Flood, 2014), a bijection on 64-bit integers whose output bits each depend on every input bit;
platforms use MurmurHash or MD5 the same way. Users fall into 10,000 buckets, and a treatment
share of 50% is buckets 0 to 4,999.
"""

from __future__ import annotations

import numpy as np

BUCKETS = 10_000
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    z = values.astype(np.uint64)  # a copy, mixed in place
    z += _GOLDEN
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def bucket(user_ids: np.ndarray, salt: int) -> np.ndarray:
    """Each user's bucket in ``[0, BUCKETS)`` for the experiment with ``salt``."""
    ids = np.asarray(user_ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"bucket: user ids must be integers, got dtype {ids.dtype}")
    if not isinstance(salt, (int, np.integer)):
        raise ValueError(f"bucket: salt must be an integer, got {salt!r}")
    with np.errstate(over="ignore"):
        key = _splitmix64(np.array(salt % (1 << 64), dtype=np.uint64))
        mixed = _splitmix64(ids.astype(np.uint64) ^ key)
    return (mixed % np.uint64(BUCKETS)).astype(np.int64)


def assign(user_ids: np.ndarray, salt: int, treatment_share: float = 0.5) -> np.ndarray:
    """True where a user is in the treatment arm (the first ``treatment_share`` of the buckets)."""
    if not 0 < treatment_share < 1:
        raise ValueError(f"assign: treatment_share must be in (0, 1), got {treatment_share!r}")
    return bucket(user_ids, salt) < round(treatment_share * BUCKETS)
