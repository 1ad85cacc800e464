"""Version counters: how backward notices that a tensor it saved was changed in place.

Every write into a tensor's memory counts a new version, as PyTorch's version counter does: the
in-place Tensor methods (``add_``, ``zero_``, ``x[i] = v``...) and writes through ``Tensor.data``,
which hands out the tensor's numpy array as a :class:`TrackedArray` — numpy in every way, except
that item assignment, in-place operators, ufuncs writing into it (``out=``) and
``fill``/``sort``/``put`` count a version. (Being a view, it is not its own memory's owner:
``t.data.base`` is the array that is.) Tensors
sharing memory (views made by ``reshape``, slicing, ``detach``...) share one counter. A node of
the tape records the versions of its inputs and output; backward compares them and refuses to
use a value that changed since (instead of silently computing a wrong gradient).

A write through a plain array taken with ``np.asarray(t.data)``, by ``np.copyto``, or by a compiled
kernel, is not seen: those bypass the counter, as writes through ``torch.Tensor.data`` do in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TrackedArray", "Counter", "CLOCK", "new_counter", "bump", "written_since"]

# [version, clock at the last write], shared by tensors that share memory
Counter = list
CLOCK = [0]  # the global write clock: writes so far, anywhere (read as CLOCK[0])


def new_counter(version: int = 0) -> Counter:
    """A counter at ``version``; a nonzero one counts as written now."""
    if version:
        CLOCK[0] += 1
    return [version, CLOCK[0]]


def bump(counter: Counter | None) -> None:
    """Count a write."""
    if counter is not None:
        CLOCK[0] += 1
        counter[0] += 1
        counter[1] = CLOCK[0]


def written_since(counter: Counter | None, time: int) -> bool:
    return counter is not None and counter[1] > time


class TrackedArray(np.ndarray):
    """A numpy array whose in-place writes count a version of the tensor that owns it.

    Views of it (slices, reshapes) count on the same counter; results of arithmetic on it and
    copies of it are plain arrays.
    """

    _counter: Counter | None = None

    @staticmethod
    def of(array: np.ndarray, counter: Counter) -> TrackedArray:
        view = array.view(TrackedArray)
        view._counter = counter
        return view

    def __array_finalize__(self, obj: Any) -> None:
        if obj is not None and self.base is not None:  # a view: writes reach the same memory
            self._counter = getattr(obj, "_counter", None)

    def __array_wrap__(self, array: np.ndarray, context: Any = None, return_scalar: bool = False):
        if array is self:  # a ufunc wrote into this array (out=)
            bump(self._counter)
            return self
        if type(array) is not np.ndarray:
            array = array.view(np.ndarray)
        return array[()] if return_scalar else array

    def __repr__(self) -> str:
        return repr(self.view(np.ndarray))

    def __reduce__(self) -> Any:  # pickles (and crosses processes) as a plain array
        return self.view(np.ndarray).__reduce__()

    def __setitem__(self, key: Any, value: Any) -> None:
        bump(self._counter)
        super().__setitem__(key, value)

    def fill(self, value: Any) -> None:
        bump(self._counter)
        super().fill(value)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        bump(self._counter)
        super().sort(*args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> None:
        bump(self._counter)
        super().put(*args, **kwargs)


def _in_place(name: str):
    method = getattr(np.ndarray, name)

    def counted(self: TrackedArray, other: Any) -> TrackedArray:
        bump(self._counter)
        return method(self, other)

    counted.__name__ = name
    return counted


for _name in ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__",
              "__ipow__", "__imatmul__", "__iand__", "__ior__", "__ixor__", "__ilshift__",
              "__irshift__"):
    setattr(TrackedArray, _name, _in_place(_name))
