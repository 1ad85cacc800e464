"""Assertion helpers for lab test cells: strict about types, clear about what differs.

They accept only plain values (numpy arrays, Python numbers, the engine's Tensors, which are
unwrapped), so an object that claims to equal everything cannot pass a comparison. The grader
restores this module before every test (see :mod:`mlsys.grading.guard`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_array", "assert_close", "assert_equal"]

_NUMBERS = (bool, int, float, np.bool_, np.integer, np.floating)


def as_array(value: Any, name: str = "value") -> np.ndarray:
    """``value`` as a plain ndarray; anything other than an ndarray, number or Tensor is refused."""
    from mlsys.tensor import Tensor

    if type(value) is Tensor:
        value = value.data
    if type(value) is np.ndarray:
        return value
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
        elif type(e) is np.ndarray:
            arr = as_array(a, path)
            if arr.shape != e.shape or not np.array_equal(arr, e):
                raise AssertionError(f"{path}: got {arr!r}, expected {e!r}")
        else:
            if isinstance(a, (np.integer, np.floating, np.bool_)):
                a = a.item()
            if type(a) not in plain or a != e:
                raise AssertionError(f"{path}: got {a!r}, expected {e!r}")

    check(actual, expected, name)
