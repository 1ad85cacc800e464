"""What lab test cells use: strict comparisons, and the hidden tests' class-specific inputs.

The comparisons accept only plain values (numpy arrays, Python numbers, the engine's Tensors,
which are unwrapped) and say what differs. When the grader runs a test, the learner's results
reach it as plain data anyway (:mod:`mlsys.grading.wire`), so nothing can pretend to be equal.

:func:`hidden_rng` seeds hidden tests from the instructor's secret: the grader sets it with
:func:`use_secret` (from ``mlsys lab grade --secret`` or ``$MLSYS_LAB_SECRET``), so each class
gets its own hidden cases and the open repository does not give them away. Without a secret the
cases are the public default ones. Visible tests never call it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import numpy as np

__all__ = ["as_array", "assert_close", "assert_equal", "hidden_rng", "secret_id", "use_secret"]

SECRET_ENV = "MLSYS_LAB_SECRET"
_secret: str | None = None


def use_secret(secret: str | None) -> None:
    """Set (or with None, clear) the secret :func:`hidden_rng` derives its seeds from."""
    global _secret
    if secret is not None and not secret:
        raise ValueError("the lab secret must not be empty")
    _secret = secret


def _current_secret() -> str:
    return _secret if _secret is not None else os.environ.get(SECRET_ENV, "")


def hidden_rng(salt: str) -> np.random.Generator:
    """A generator for one hidden test's inputs, seeded by HMAC-SHA256(secret, ``salt``); name the
    salt ``"<lab>/<test>"`` so that every test draws its own cases."""
    digest = hmac.new(_current_secret().encode(), salt.encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def secret_id(secret: str) -> str:
    """A short public fingerprint of ``secret`` (stored in released notebooks to catch a grade
    run with another secret; it does not reveal the secret)."""
    return hashlib.sha256(b"mlsys-lab-secret:" + secret.encode()).hexdigest()[:12]

_NUMBERS = (bool, int, float, np.bool_, np.integer, np.floating)


def as_array(value: Any, name: str = "value") -> np.ndarray:
    """``value`` as a plain ndarray; anything other than an ndarray, number or Tensor is refused."""
    from mlsys.tensor import Tensor

    if type(value) is Tensor:
        value = value.data
    if isinstance(value, np.ndarray):  # a subclass is compared as its plain data
        return value.view(np.ndarray)
    if type(value) in _NUMBERS or isinstance(value, _NUMBERS):
        return np.asarray(value)
    raise AssertionError(f"{name}: expected a numpy array, a number or a Tensor, got "
                         f"{type(value).__name__}")


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-8,
                 name: str = "value") -> None:
    """Same shape and values within ``atol + rtol * |expected|`` (NaNs never match)."""
    a, e = as_array(actual, name), as_array(expected, f"expected {name}")
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {a.shape}, expected {e.shape}")
    if a.dtype.kind not in "biuf":
        raise AssertionError(f"{name}: dtype {a.dtype} is not numeric")
    err = np.abs(a.astype(np.float64) - e) - (atol + rtol * np.abs(e))
    bad = ~(err <= 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{name}: {int(bad.sum())} of {a.size} values differ; at index "
                             f"{where} got {a[where]!r}, expected {e[where]!r}")


def assert_equal(actual: Any, expected: Any, *, name: str = "value") -> None:
    """Exact equality of plain values: ints, strings, tuples and lists of them, arrays."""
    plain = (int, float, str, bool, type(None))

    def check(a: Any, e: Any, path: str) -> None:
        if type(e) in (list, tuple):
            if type(a) not in (list, tuple) or len(a) != len(e):
                raise AssertionError(f"{path}: expected a sequence of {len(e)} items, got {a!r}")
            for i, (x, y) in enumerate(zip(a, e)):
                check(x, y, f"{path}[{i}]")
        elif isinstance(e, np.ndarray):
            arr = as_array(a, path)
            if arr.shape != e.shape or not np.array_equal(arr, e):
                raise AssertionError(f"{path}: got {arr!r}, expected {e!r}")
        else:
            if isinstance(a, (np.integer, np.floating, np.bool_)):
                a = a.item()
            if type(a) not in plain or a != e:
                raise AssertionError(f"{path}: got {a!r}, expected {e!r}")

    check(actual, expected, name)
