"""The primitive registry: every operation of the engine, defined once.

A :class:`Primitive` bundles what every part of the system needs to know about an op:

* ``forward(*arrays, **params)`` computes it on numpy arrays (the reference implementation);
* ``vjp(g, out, *inputs, **params)`` returns one cotangent per input (or ``None``), written with
  other primitives so that backward passes can themselves be traced and differentiated;
* ``shape(*specs, **params)`` gives the output :class:`Spec` (shape and dtype) without running it;
* ``cost(*specs, out=spec, **params)`` gives FLOPs and bytes moved, read by the roofline and the
  simulators.

The eager tape, the graph tracer, the compiler passes, the kernels and the simulators all read this
one table (``PRIMITIVES``); there is no second list of ops anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Cost", "Spec", "Primitive", "PRIMITIVES", "register", "get", "set_dispatcher"]


class Spec(NamedTuple):
    """An abstract value: what a shape rule consumes and produces."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @staticmethod
    def of(array: Any) -> Spec:
        return Spec(tuple(array.shape), np.dtype(array.dtype))


@dataclass(frozen=True)
class Cost:
    """Work of one primitive application: floating-point operations and bytes moved."""

    flops: int
    bytes: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.bytes + other.bytes)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOPs per byte (the roofline's x axis)."""
        return self.flops / self.bytes if self.bytes else float("inf")


@dataclass(eq=False)
class Primitive:
    """One operation: its reference forward, VJP, shape rule and cost rule.

    ``elementwise`` marks ops the compiler may fuse; ``pure=False`` marks ops with side effects
    (random number generation) that common-subexpression elimination and constant folding must
    leave alone. ``impls`` maps a backend name (``"numba"``, ``"cuda"``) to a faster forward.
    """

    name: str
    forward: Callable[..., np.ndarray]
    shape: Callable[..., Spec]
    cost: Callable[..., Cost]
    vjp: Callable[..., tuple] | None = None
    elementwise: bool = False
    pure: bool = True
    impls: dict[str, Callable[..., Any]] = field(default_factory=dict)
    doc: str = ""

    def __call__(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive to Tensors (records it on the tape when gradients are needed)."""
        return _dispatch(self, *args, **params)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


PRIMITIVES: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    """Add ``prim`` to the registry; a name may be registered only once."""
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} is already registered")
    PRIMITIVES[prim.name] = prim
    return prim


def get(name: str) -> Primitive:
    """Look a primitive up by name, with a clear error for unknown names."""
    try:
        return PRIMITIVES[name]
    except KeyError:
        known = ", ".join(sorted(PRIMITIVES))
        raise KeyError(f"unknown primitive {name!r}; known primitives: {known}") from None


def _no_dispatcher(prim: Primitive, *args: Any, **params: Any) -> Any:
    raise RuntimeError("mlsys.tensor has not been imported; import mlsys first")


_dispatch: Callable[..., Any] = _no_dispatcher


def set_dispatcher(fn: Callable[..., Any]) -> None:
    """Install the function that applies a primitive to Tensors (done once by ``mlsys.tensor``)."""
    global _dispatch
    _dispatch = fn
