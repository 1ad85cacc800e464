"""The primitive registry: every operation of the engine, defined once.

A :class:`Primitive` bundles what every part of the system needs to know about an op:

* ``forward(*arrays, **params)`` computes it on numpy arrays (the reference implementation);
* ``vjp(g, out, *inputs, **params)`` returns one cotangent per input (or ``None``), written with
  other primitives so that backward passes can themselves be traced and differentiated;
* ``shape(*specs, **params)`` gives the output :class:`Spec` (shape and dtype) without running it;
* ``cost(*specs, out=spec, **params)`` gives FLOPs and bytes moved, read by the roofline and the
  simulators;
* how it lowers: ``scalar``, the expression of one output element for generated kernels (an
  elementwise primitive), ``reduction`` (an accumulator and how it combines), ``view``,
  ``arity``, ``pure``; and ``algebra``, the exact rewrites the simplifier may apply.

The eager tape, the graph tracer, the compiler passes, the CPU and CUDA kernels and the simulators
all read this one table (``PRIMITIVES``); there is no second list of ops anywhere. A backend adds
a hand-written kernel with ``@prim.implement(device)``, naming the primitive object (a typo is an
``AttributeError`` at import), and generates the rest from the templates.

**Scalar templates** are Python expressions over the operands ``{0}``, ``{1}``... (and parameters
by name) that the Numba CPU and numba-cuda code generators both compile. They may call the
:data:`SCALAR_FUNCTIONS` (each backend binds them to its best implementation), ``F(literal)`` (a
float literal in the kernel's float type, so float32 data is computed in float32 as numpy does)
and ``np.<dtype>(x)`` conversions. They follow IEEE semantics: NaN propagates through
``maximum``/``minimum``/``max``, ``log(0)`` is ``-inf``, ``1/0`` is ``inf``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Cost", "Spec", "Primitive", "Reduction", "Algebra", "PRIMITIVES", "SCALAR_FUNCTIONS",
           "register", "get", "set_dispatcher"]

# The functions a scalar template may call; every code generator binds each of them.
SCALAR_FUNCTIONS = ("exp", "log", "log1p", "sqrt", "tanh", "erf")


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


Template = str | Callable[[list[str], Mapping[str, Any]], str]


@dataclass(frozen=True)
class Reduction:
    """How a reduction lowers: an accumulator starting at ``identity``, updated per element by the
    ``combine`` template (``{0}`` the accumulator, ``{1}`` the element), divided by the number of
    reduced elements at the end when ``mean``."""

    identity: float
    combine: str
    mean: bool = False


@dataclass(frozen=True)
class Algebra:
    """Exact rewrites the simplifier may apply to one application of a primitive.

    ``neutral`` maps an operand position to the constant that makes the op return its other
    operand (``x * 1``: ``{0: 1, 1: 1}``); ``involution``: ``op(op(x)) == x``; ``noop(x_spec,
    **params)``: the op returns its input unchanged; ``compose(inner, outer)``: the parameters
    of one application equal to ``op(op(x, **inner), **outer)``.
    """

    neutral: Mapping[int, float] = field(default_factory=dict)
    involution: bool = False
    noop: Callable[..., bool] | None = None
    compose: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None


@dataclass(eq=False)
class Primitive:
    """One operation: its reference forward, VJP, shape and cost rules, and how it lowers.

    ``elementwise`` marks ops the compiler may fuse (they need a ``scalar`` template, and
    ``arity``: the number of operands, None for a variadic op); ``multipass`` marks elementwise
    ops whose numpy forward makes several passes over memory, so that even alone they gain from
    a generated loop; ``view`` marks ops whose result may share its first input's memory;
    ``reduction`` says how a reduction accumulates; ``pure=False`` marks ops with side effects
    (random number generation) that common-subexpression elimination and constant folding must
    leave alone. ``impls`` maps a backend name (``"numba"``, ``"cuda"``) to a faster forward.
    """

    name: str
    forward: Callable[..., np.ndarray]
    shape: Callable[..., Spec]
    cost: Callable[..., Cost]
    vjp: Callable[..., tuple] | None = None
    arity: int | None = None
    elementwise: bool = False
    scalar: Template | None = None
    multipass: bool = False
    view: bool = False
    reduction: Reduction | None = None
    algebra: Algebra = field(default_factory=Algebra)
    pure: bool = True
    impls: dict[str, Callable[..., Any]] = field(default_factory=dict)
    doc: str = ""

    def __call__(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive to Tensors (records it on the tape when gradients are needed)."""
        return _dispatch(self, *args, **params)

    def scalar_expr(self, args: list[str], params: Mapping[str, Any]) -> str:
        """This elementwise primitive's expression for one element, given its operands' names."""
        if self.scalar is None:
            raise ValueError(f"{self.name}: has no scalar template (it does not lower to a loop)")
        if isinstance(self.scalar, str):
            return self.scalar.format(*args, **params)
        return self.scalar(args, params)

    def scalar_function(self, params: Mapping[str, Any], name: str = "f") -> str:
        """Source of ``def name(a0, a1, ...)`` returning one output element (for code generators)."""
        args = [f"a{k}" for k in range(self.arity or 0)]
        return f"def {name}({', '.join(args)}):\n    return {self.scalar_expr(args, params)}\n"

    def implement(self, device: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a kernel as this primitive's forward on ``device``."""

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.impls[device] = fn
            return fn

        return add

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


PRIMITIVES: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    """Add ``prim`` to the registry; a name may be registered only once, and an elementwise
    primitive must say how it lowers (its operand count and scalar template)."""
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} is already registered")
    if prim.elementwise and (prim.scalar is None or prim.arity is None):
        raise ValueError(f"primitive {prim.name!r} is elementwise: give its arity and scalar template")
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
    """Install the function that applies a primitive to Tensors (done once by ``mlsys.tensor``):
    ``fn(prim, *tensors, **params)`` becomes ``Primitive.__call__`` itself, one Python call per
    operation on the eager hot path instead of two."""
    global _dispatch
    _dispatch = fn
    Primitive.__call__ = fn  # type: ignore[method-assign]
